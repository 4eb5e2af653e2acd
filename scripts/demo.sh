#!/usr/bin/env bash
# `make demo`: validate every definition, draw the sample's DAG, build the training image from
# docker/ and run the sample pipeline end to end in it. No Azure, no Pulumi CLI.
#
#   scripts/demo.sh [PIPELINE]          default: churn-train
#   EXECUTOR=process scripts/demo.sh    no Docker: local python3 and Rscript
#   BASE_IMAGE=REF scripts/demo.sh      build docker/ on this base instead of the Azure ML image
#
# Without a reachable Docker engine, or where the Azure ML base image cannot be pulled (no public
# registry), it uses .ci/docker.sh: Debian's engine (installed and started as root) and a base
# image made locally from debootstrap. That daemon keeps running after the demo; the script says how
# to stop it (`AMLPIPE_DOCKERD_PID=<pid> .ci/docker.sh stop`).
set -euo pipefail
cd "$(dirname "$0")/.."

SAMPLE="${1:-churn-train}"
AMLPIPE=.venv/bin/amlpipe
AZUREML_BASE="$(sed -n 's/^ARG BASE_IMAGE=//p' docker/Dockerfile)"

"$AMLPIPE" validate pipeline_defs
"$AMLPIPE" graph "$SAMPLE"

if [ "${EXECUTOR:-docker}" = process ]; then
  exec "$AMLPIPE" run "$SAMPLE" --executor process
fi

engine_answers() { .venv/bin/python -c 'import docker; docker.from_env().ping()' >/dev/null 2>&1; }
base_available() {
  docker image inspect "$AZUREML_BASE" >/dev/null 2>&1 || timeout 120 docker pull "$AZUREML_BASE" >&2
}

if [ -z "${BASE_IMAGE:-}" ] && { ! engine_answers || ! base_available; }; then
  echo "demo: using a local Debian base image (Azure ML base unavailable here)" >&2
  eval "$(.ci/docker.sh start)"
  BASE_IMAGE="$AMLPIPE_TEST_BASE_IMAGE"
  if [ -n "${AMLPIPE_DOCKERD_PID:-}" ]; then
    echo "demo: dockerd (pid $AMLPIPE_DOCKERD_PID) keeps running; stop it with" \
      "\`sudo AMLPIPE_DOCKERD_PID=$AMLPIPE_DOCKERD_PID .ci/docker.sh stop\`" >&2
  fi
fi

build_args=()
if [ -n "${BASE_IMAGE:-}" ]; then
  build_args=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
fi
"$AMLPIPE" build "${build_args[@]}"
"$AMLPIPE" run "$SAMPLE"
