"""Fixtures for `amlpipe` tests: the spec core's tmp repositories (one definition of them)."""

from tests.definitions.conftest import make_repo

__all__ = ["make_repo"]
