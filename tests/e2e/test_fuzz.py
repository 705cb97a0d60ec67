"""The OpenAPI, fuzzed (a small `./fit fuzz`): schemathesis through Envoy against a mesh of
its own, every operation authenticated as its access says. No input gives a server error, every
response is what the OpenAPI states, every operation is reached, and schemathesis has no warning
(so the declared limits match what the API enforces). The full run (10,000+ cases, SQLite and
PostgreSQL) is `./fit fuzz`, recorded in bench/results/fuzz.json.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools import fuzz, fuzz_data
from tests.e2e.conftest import RunningMesh, e2e_config, running_mesh
from tests.e2e.harness import TestClock

pytestmark = pytest.mark.e2e

CASES = 300  # schemathesis adds its boundary cases (coverage phase): ~1,000 requests in all


@pytest.fixture(scope="module")
def fuzz_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningMesh]:
    """A mesh of its own: the fuzzer bootstraps the admin, so the database must be empty."""
    data: Path = tmp_path_factory.mktemp("fuzz-mesh")
    clock = TestClock(data / "clock-offset")
    env = {k: v for k, v in fuzz.FUZZ_ENV.items() if k != "FITCO_RATE_LIMITS"}
    config = e2e_config(data, clock, f"sqlite:///{data / 'fitco.db'}", **env)
    with running_mesh(config, clock) as m:
        yield m


def test_fuzzing_the_openapi_finds_nothing(fuzz_mesh: RunningMesh, tmp_path: Path) -> None:
    target = fuzz_data.Target.of(fuzz_mesh.mesh)
    result = fuzz.run_schemathesis(target.base_url, fuzz_data.seed(target), CASES, tmp_path)
    output = (tmp_path / "schemathesis.out").read_text()
    assert fuzz.problems(result) == [], output[-6000:]
    assert result["server_errors"] == 0
    assert result["cases"] >= CASES
    ops = result["operations"]
    assert ops["tested"] == ops["selected"] == len(fuzz.operations()) - len(result["not_fuzzed"])
    # Internal RPCs are not routed at the edge, so not fuzzed there; server streams are not one
    # response body (their own tests cover them).
    assert all(
        why.startswith(("internal:", "server stream:")) for why in result["not_fuzzed"].values()
    ), result["not_fuzzed"]
    assert "EventService_WatchEvents" in result["not_fuzzed"]
