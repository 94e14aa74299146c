"""Throughput of the NCCL log parser on a large synthetic multi-rank log set.

The set is made of the real captures in tests/data (4×H200, NCCL 2.28.9: healthy, SHM,
Socket and two-node runs, and the seed's p4d log with aws-ofi-nccl), copied with distinct
host names and pids until it reaches --mbytes, written as one file per rank, then read and
parsed. Target (issue 3): >= 100 MB/s on a 2-core machine.

    python benchmarks/parse_speed.py --mbytes 200
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pytest_gpufabric.evidence.nccl_log import parse_files

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
_PROCESS = re.compile(r"^(\[[^\]]*\] )?([^\s:]+):(\d+):", re.M)


def sources() -> list[str]:
    logs = sorted(DATA.glob("h200x4-nccl2.28.9/*/*.log")) + sorted(DATA.glob("seeds/*.txt"))
    return [p.read_text() for p in logs]


def _renamer(host: str, pid_offset: int) -> Callable[[re.Match[str]], str]:
    """Give every copy of a log its own host and pids, as another node's ranks would have."""
    return lambda m: f"{m[1] or ''}{host}:{int(m[3]) + pid_offset}:"


def build(directory: Path, mbytes: float) -> tuple[int, int]:
    """Write rank logs until ``mbytes`` MB; returns (files, bytes)."""
    texts = sources()
    written = files = 0
    node = 0
    while written < mbytes * 1e6:
        for text in texts:
            host = f"node{node:04d}"
            rank_log = _PROCESS.sub(_renamer(host, node), text)
            (directory / f"{host}.{files}.log").write_text(rank_log)
            written += len(rank_log)
            files += 1
        node += 1
    return files, written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mbytes", type=float, default=200.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        files, nbytes = build(directory, args.mbytes)
        paths = sorted(directory.iterdir())
        rates = []
        for i in range(args.repeat):
            t0 = time.perf_counter()
            log = parse_files(paths)
            seconds = time.perf_counter() - t0
            rates.append(nbytes / 1e6 / seconds)
            print(
                f"run {i + 1}: {nbytes / 1e6:.0f} MB in {files} files, {log.lines} lines, "
                f"{len(log.processes)} processes, {len(log.connections)} connections, "
                f"{len(log.warnings)} WARNs: {seconds:.2f} s = {rates[-1]:.0f} MB/s"
            )
        print(f"best {max(rates):.0f} MB/s, worst {min(rates):.0f} MB/s (target >= 100 MB/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
