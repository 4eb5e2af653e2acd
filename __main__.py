"""Pulumi program entry point. The CLI runs it from the project root (Pulumi.yaml sets no `main:`),
so the program and every provider plugin it starts share one working directory and find the
`.venv` named in Pulumi.yaml. The composition itself is :mod:`infra.program`."""

from infra.program import main

main()
