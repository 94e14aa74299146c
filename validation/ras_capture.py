"""What NCCL's RAS service says about a hung collective, captured on a GPU host (issue 12:
hang attribution). Two ranks (torch.distributed, NCCL), RAS on a port of this run
(NCCL_RAS_ADDR), and three states, each queried in text and in JSON:

- ``healthy``: both ranks idle between collectives;
- ``lagging``: rank 1 alive but sleeping before a collective that rank 0 has launched (the
  rank "never arrived");
- ``stopped``: rank 1 stopped (SIGSTOP) while rank 0 waits in a collective.

    python validation/ras_capture.py OUT_DIR

Writes OUT_DIR/<state>-<format>.txt (the raw answer) and OUT_DIR/ranks.json (pids, hosts,
GPUs). Leaves NCCL_NVLS_ENABLE and the other operator settings as the environment has them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pytest_gpufabric.evidence.ras import query  # the tree on PYTHONPATH

PORT_RAS = 28123
PORT_STORE = 29511


def capture(out: Path, state: str) -> None:
    """Each rank's own RAS port (NCCL_RAS_ADDR per rank: with one shared port, SO_REUSEPORT
    hands the query to any rank, a stopped one included, and it then never answers)."""
    for rank in (0, 1):
        for fmt, command in (
            ("text", "VERBOSE STATUS"),
            ("json", "SET FORMAT json\nVERBOSE STATUS"),
        ):
            try:
                text = query("127.0.0.1", PORT_RAS + rank, command, timeout=10.0)
            except OSError as exc:
                text = f"(query failed: {exc})"
            (out / f"{state}-rank{rank}-{fmt}.txt").write_text(text)
            print(f"--- {state} rank {rank} {fmt}: {len(text)} bytes", flush=True)
            print(text[:1200], flush=True)


RANK = r"""
import os, sys, time, torch, torch.distributed as dist
rank = int(os.environ["RANK"])
torch.cuda.set_device(rank)
dist.init_process_group("nccl", device_id=torch.device("cuda", rank))
t = torch.ones(1 << 20, device="cuda")
for _ in range(5):
    dist.all_reduce(t)
torch.cuda.synchronize()
print("ready", rank, flush=True)
open(os.environ["FLAG"] + f".{rank}", "w").close()
time.sleep(6)                         # healthy: both idle while the parent queries
if rank == 1:
    time.sleep(14)                    # lagging: rank 0 is already inside the next all_reduce
dist.all_reduce(t)
torch.cuda.synchronize()
print("second", rank, flush=True)
open(os.environ["FLAG"] + f".second.{rank}", "w").close()
dist.all_reduce(t)                    # stopped: the parent stops rank 1 before this one
torch.cuda.synchronize()
dist.destroy_process_group()
print("done", rank, flush=True)
"""


def main() -> int:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    flag = str(out / "flag")
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(PORT_STORE), WORLD_SIZE="2",
               FLAG=flag)  # fmt: skip
    logs = [(out / f"rank{r}.log").open("w") for r in (0, 1)]
    ranks = [
        subprocess.Popen(
            [sys.executable, "-c", RANK],
            env=dict(env, RANK=str(r), NCCL_RAS_ADDR=f"127.0.0.1:{PORT_RAS + r}"),
            stdout=logs[r],
            stderr=subprocess.STDOUT,
        )
        for r in (0, 1)
    ]
    try:
        wait_for(lambda: all(Path(f"{flag}.{r}").exists() for r in (0, 1)), 120)
        (out / "ranks.json").write_text(json.dumps(
            {"pids": [p.pid for p in ranks], "host": socket.gethostname(),
             "ip": socket.gethostbyname(socket.gethostname())}, indent=1))  # fmt: skip
        time.sleep(1)
        capture(out, "healthy")
        time.sleep(7)  # rank 0 now waits in all_reduce, rank 1 sleeps
        capture(out, "lagging")
        wait_for(lambda: all(Path(f"{flag}.second.{r}").exists() for r in (0, 1)), 60)
        os.kill(ranks[1].pid, signal.SIGSTOP)
        time.sleep(8)
        capture(out, "stopped")
        os.kill(ranks[1].pid, signal.SIGCONT)
        for p in ranks:
            p.wait(timeout=120)
    finally:
        for p in ranks:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                p.kill()
    for log in logs:
        log.close()
    print("exit codes", [p.returncode for p in ranks])
    return 0


def wait_for(done: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.2)
    raise TimeoutError("the ranks did not get there in time")


if __name__ == "__main__":
    sys.exit(main())
