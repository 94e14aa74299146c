"""The fleet isolation planner (pytest_gpufabric/fleet/planner.py) against model fleets:
rounds, tests, wall time, and nodes wrongly blamed or missed.

    python benchmarks/fleet_sim.py [--seeds 30] [--test-minutes 4]

Each row: N nodes, k bad nodes, m bad links (among the links the screen's rings use), a
probability that any one test result is wrong; over --seeds random fleets. Issue 12's
target: k <= 3 bad nodes among 1024 found in <= 8 rounds with no healthy node blamed, and
all-healthy fleets cleared in <= 3 rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_gpufabric.fleet.simulate import model, simulate

CASES = [
    (16, 0, 0, 0.0), (16, 1, 0, 0.0), (64, 1, 0, 0.0), (64, 3, 1, 0.0), (232, 1, 0, 0.0),
    (256, 3, 1, 0.0), (1024, 0, 0, 0.0), (1024, 1, 0, 0.0), (1024, 3, 0, 0.0),
    (1024, 3, 1, 0.0), (1024, 0, 1, 0.0), (4096, 0, 0, 0.0), (4096, 3, 2, 0.0),
    (1024, 0, 0, 0.01), (1024, 3, 0, 0.01), (1024, 3, 1, 0.01),
]  # fmt: skip


def _found_by(rounds: list[int | None]) -> str:
    if any(r is None for r in rounds):
        return f"never in {sum(r is None for r in rounds)} fleets"
    return str(max(r for r in rounds if r is not None))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--test-minutes", type=float, default=4.0,
                        help="minutes per round (CRE allows 4 per test, CHS 10)")  # fmt: skip
    args = parser.parse_args()
    print(f"{args.seeds} fleets per row, {args.test_minutes:g} min per round")
    print("| N | bad nodes | bad links | wrong results | rounds (mean / max) | bad nodes named "
          "by round (max) | tests (mean / max) | wall, max | unfinished | healthy blamed | "
          "bad missed | links found / missed / wrongly named | planner time |")  # fmt: skip
    print("|" + "---|" * 13)
    for n, k, m, p in CASES:
        t0 = time.perf_counter()
        runs = [simulate(model(n, k, m, p, seed)) for seed in range(args.seeds)]
        spent = (time.perf_counter() - t0) / len(runs)
        rounds = [r.rounds for r in runs]
        tests = [r.tests for r in runs]
        cells = [
            str(n), str(k), str(m), f"{p:g}",
            f"{statistics.mean(rounds):.1f} / {max(rounds)}",
            _found_by([r.found_by for r in runs]),
            f"{statistics.mean(tests):.0f} / {max(tests)}",
            f"{max(rounds) * args.test_minutes:.0f} min",
            str(sum(not r.finished for r in runs)),
            str(sum(len(r.blamed) for r in runs)),
            str(sum(len(r.missed) for r in runs)),
            f"{sum(r.links_found for r in runs)} / {sum(r.links_missed for r in runs)} / "
            f"{sum(r.links_wrong for r in runs)}",
            f"{spent * 1e3:.0f} ms",
        ]  # fmt: skip
        print("| " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
