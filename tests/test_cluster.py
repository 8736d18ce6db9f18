"""The cluster fault benchmark (benchmarks/cluster.py), short: three nodes, two app instances;
a node killed, then two stopped, lose and duplicate nothing and fail no request."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support import REPO_ROOT

pytestmark = [pytest.mark.cassandra, pytest.mark.slow]


def test_losing_one_node_then_two_fails_loses_and_duplicates_nothing() -> None:
    # Each phase lasts until a few of its requests were answered: with node 2 killed, the
    # survivors keep hints for it; with two nodes stopped, the outboxes take every write.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.cluster",
            *("--concurrency", "4", "--phase", "1", "--down", "1", "--min-answers", "10"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])

    assert (figures["failed"], figures["lost"], figures["duplicates"]) == (0, 0, 0)
    phases = figures["latency"]
    assert list(phases) == ["before", "one node down", "after", "two nodes down", "back"]
    assert all(phase["requests"] >= 10 for phase in phases.values())
    # Without a quorum the outboxes took the writes, and replayed every one of them.
    assert phases["two nodes down"]["outbox_queued"] > 0
    assert figures["outbox_replayed"] >= figures["outbox_queued"]
