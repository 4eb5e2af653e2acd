"""Tests of the dynamic provider through its real host (helpers: grpc_host, faults,
provider_fixtures)."""
