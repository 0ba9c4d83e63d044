"""torchrun sharding: two processes (gloo, CPU) give the single process's metric values and write one row."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from samplerzoo.bench import distributed, harness
from samplerzoo.bench.results import ResultsFile

SWEEP = ["--checkpoint", "digits-ideal", "--sampler", "euler_ancestral", "--nfe", "4", "--samples", "40",
         "--batch", "8", "--metrics", "fid,kid"]


def test_batches_are_shared_between_processes_without_gaps_or_overlaps(monkeypatch: pytest.MonkeyPatch) -> None:
    assert distributed.gather("x") == ["x"] and distributed.share("x") == "x"  # one process: the identity
    assert distributed.shard(20, 8) == [(0, 8), (8, 16), (16, 20)]
    shards = []
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    for rank in range(3):
        monkeypatch.setattr(distributed, "rank", lambda rank=rank: rank)
        shards.append(distributed.shard(45, 8))
    assert shards == [[(0, 8), (24, 32)], [(8, 16), (32, 40)], [(16, 24), (40, 45)]]


def test_torchrun_with_two_processes_gives_the_single_process_metrics(tmp_path: Path) -> None:
    env = {**os.environ, "SAMPLERZOO_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    sharded = tmp_path / "sharded.jsonl"
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    "--no-python", sys.executable, "-c", "from samplerzoo.cli import main; main()", "bench", *SWEEP,
                    "--results", str(sharded)], env=env, check=True, capture_output=True, timeout=120)
    (row,) = ResultsFile(sharded).rows()  # only the first process writes
    single = harness.sweep("digits-ideal", ["euler_ancestral"], ["karras"], [4], 40, 0, tmp_path / "single.jsonl",
                           batch=8, metric_names=("fid", "kid"))[0]
    assert row["processes"] == 2 and single["processes"] == 1 and row["key"] == single["key"]
    assert row["metrics"] == pytest.approx(single["metrics"], rel=1e-6)
    assert row["metrics"]["fid"] > 0 and row["counted_nfe"] == 4
