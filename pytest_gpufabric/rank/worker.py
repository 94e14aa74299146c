"""Entry point of one rank process: ``python -m pytest_gpufabric.rank.worker``.

It joins the process group once (``import torch`` and NCCL init are paid once per pool),
then answers jobs read as JSON lines from an inherited pipe. A reader thread owns that
pipe: when the controller disappears (EOF) it ends the process even if the main thread is
stuck inside a collective, so a crashed or killed pytest never leaves ranks behind.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import sys
import threading
import time
import traceback
from datetime import timedelta
from typing import Any

EXIT_CONTROLLER_GONE = 70


class Channel:
    def __init__(self, cmd_fd: int, result_fd: int) -> None:
        self._commands: queue.Queue[dict[str, Any]] = queue.Queue()
        self._out = os.fdopen(result_fd, "w", buffering=1, encoding="utf-8")
        self._lock = threading.Lock()
        self._leaving = threading.Event()
        self._reader = threading.Thread(target=self._read, args=(cmd_fd,), daemon=True)
        self._reader.start()

    def _read(self, fd: int) -> None:
        with os.fdopen(fd, "r", encoding="utf-8") as stream:
            for line in stream:
                message = json.loads(line)
                self._commands.put(message)
                if message.get("op") == "exit":
                    self._leaving.set()
                    return
        if not self._leaving.is_set():
            # Controller gone without saying goodbye: nobody will ever read our results.
            os._exit(EXIT_CONTROLLER_GONE)

    def next(self) -> dict[str, Any]:
        return self._commands.get()

    def send(self, message: dict[str, Any]) -> None:
        with self._lock:
            self._out.write(json.dumps(message) + "\n")


class Rank:
    """This process's member of the process group."""

    def __init__(self, environ: dict[str, str]) -> None:
        t0 = time.perf_counter()
        import torch
        import torch.distributed as dist

        self.import_s = time.perf_counter() - t0
        self.rank = int(environ["RANK"])
        self.world_size = int(environ["WORLD_SIZE"])
        self.local_rank = int(environ["LOCAL_RANK"])
        self.backend = environ["GPUFABRIC_BACKEND"]
        timeout = timedelta(seconds=float(environ["GPUFABRIC_TIMEOUT"]))
        if self.backend == "nccl":
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        t1 = time.perf_counter()
        dist.init_process_group(
            self.backend,
            init_method="env://",
            rank=self.rank,
            world_size=self.world_size,
            timeout=timeout,
            # Eager NCCL communicator creation, so "Init COMPLETE" is in the log at hello.
            device_id=self.device if self.backend == "nccl" else None,
        )
        # One tiny all_reduce proves every rank can reach every other before tests start.
        probe = torch.ones(1, device=self.device)
        dist.all_reduce(probe)
        if int(probe.item()) != self.world_size:
            raise RuntimeError(f"join probe summed to {probe.item()}, expected {self.world_size}")
        self.init_s = time.perf_counter() - t1

    def hello(self) -> dict[str, Any]:
        import torch

        try:  # NCCL >= 2.24 refuses P2P/SHM between ranks whose /dev/shm differ
            shm = os.stat("/dev/shm").st_dev
        except OSError:
            shm = None
        facts: dict[str, Any] = {
            "shm_dev": shm,
            "rank": self.rank,
            "local_rank": self.local_rank,
            "world_size": self.world_size,
            "host": socket.gethostname(),
            "node": os.environ.get("NCCL_HOSTID") or socket.gethostname(),  # NCCL's node
            "pid": os.getpid(),
            "backend": self.backend,
            "torch": torch.__version__,
            "import_s": round(self.import_s, 3),
            "init_s": round(self.init_s, 3),
        }
        if self.backend == "nccl":
            props = torch.cuda.get_device_properties(self.device)
            version = torch.cuda.nccl.version()  # type: ignore[no-untyped-call]
            facts["nccl"] = ".".join(str(v) for v in version)
            facts["cuda"] = torch.version.cuda
            facts["device"] = {
                "name": props.name,
                "uuid": "GPU-" + str(getattr(props, "uuid", "")),
                "pci_bus_id": getattr(props, "pci_bus_id", None),
                "memory_mib": props.total_memory // (1 << 20),
            }
        return facts

    def collective(self, job: dict[str, Any]) -> dict[str, Any]:
        from ..collectives import Collective, layout
        from .ops import run_collective

        spec = layout(Collective(job["collective"]), job["nbytes"], self.world_size, job["dtype"])
        return run_collective(
            spec, self.rank, self.device, job["warmup"], job["iters"], job["verify"]
        )

    def close(self) -> None:
        import torch.distributed as dist

        dist.destroy_process_group()


def _error(job_id: int, rank: int, exc: BaseException) -> dict[str, Any]:
    return {
        "id": job_id,
        "rank": rank,
        "ok": False,
        "error": f"{type(exc).__name__}: {exc}",
        "traceback": traceback.format_exc(limit=8),
    }


def main() -> int:
    environ = dict(os.environ)
    rank_number = int(environ["RANK"])
    channel = Channel(int(environ["GPUFABRIC_CMD_FD"]), int(environ["GPUFABRIC_RESULT_FD"]))
    try:
        rank = Rank(environ)
    except Exception as exc:
        traceback.print_exc()
        channel.send(_error(0, rank_number, exc))
        return 1
    channel.send({"id": 0, "rank": rank.rank, "ok": True, "result": rank.hello()})
    handlers = {"collective": rank.collective}
    while True:
        job = channel.next()
        if job["op"] == "exit":
            break
        try:
            result = handlers[job["op"]](job)
        except Exception as exc:
            traceback.print_exc()
            channel.send(_error(job["id"], rank.rank, exc))
            continue
        channel.send({"id": job["id"], "rank": rank.rank, "ok": True, "result": result})
    rank.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
