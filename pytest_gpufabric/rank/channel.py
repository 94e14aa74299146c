"""The rank's end of the rank protocol (launch/wire.py): a TCP connection to the controller,
or this process's stdin and stdout when the controller reaches the rank through a stream it
opened itself (``kubectl exec``-style, through the Kubernetes API server: launch/kube/).

A reader thread owns the connection's input: when the controller disappears (the connection
closes without an Exit), it ends the process at once, also when the main thread is stuck
inside a collective, so a crashed or killed pytest never leaves ranks behind.
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import socket
import sys
import threading
import time
from typing import TypeVar

from ..launch.wire import Exit, LineBuffer, Message, ProtocolError, decode, encode

M = TypeVar("M", bound=Message)
EXIT_CONTROLLER_GONE = 70
EXIT_PROTOCOL = 71
PR_SET_PDEATHSIG = 1  # linux/prctl.h


STDIO = "stdio"  # GPUFABRIC_RANK_CONTROLLER value: the channel is stdin/stdout


class _Pipes:
    """stdin/stdout as the channel. The descriptors are moved aside first, so that nothing
    the rank prints (torch warnings, tracebacks) can ever land inside the protocol: fd 1
    then goes to stderr and fd 0 reads /dev/null."""

    def __init__(self) -> None:
        self._in = os.dup(0)
        self._out = os.dup(1)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(2, 1)

    def recv(self, size: int) -> bytes:
        return os.read(self._in, size)

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._out, view) :]


class Channel:
    def __init__(self, address: str, deadline_s: float) -> None:
        if address == STDIO:
            self._sock: socket.socket | _Pipes = _Pipes()
        else:
            host, _, port = address.rpartition(":")
            self._sock = _connect(host, int(port), deadline_s)
        self._inbox: queue.Queue[Message] = queue.Queue()
        self._held: list[Message] = []  # received while waiting for another kind, in order
        self._lock = threading.Lock()
        self._leaving = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buffer = LineBuffer()
        while True:
            try:
                chunk = self._sock.recv(1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            for line in buffer.feed(chunk):
                try:
                    message = decode(line)
                except ProtocolError as exc:
                    print(f"gpufabric rank: controller sent {exc}", flush=True)
                    os._exit(EXIT_PROTOCOL)
                self._inbox.put(message)
                if isinstance(message, Exit):
                    self._leaving.set()
                    return
        if not self._leaving.is_set():
            # Controller gone without saying goodbye: nobody will ever read our results.
            os._exit(EXIT_CONTROLLER_GONE)

    def send(self, message: Message) -> None:
        with self._lock:
            self._sock.sendall(encode(message))

    def next(self) -> Message:
        return self._held.pop(0) if self._held else self._inbox.get()

    def wait_for(self, kind: type[M], timeout_s: float) -> M:
        """The next message of ``kind``; others are kept, in order, for :meth:`next`."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            try:
                message = self._inbox.get(timeout=max(left, 0.0)) if left > 0 else None
            except queue.Empty:
                message = None
            if message is None:
                raise TimeoutError(f"no {kind.kind} message from the controller in time")
            if isinstance(message, kind):
                return message
            self._held.append(message)


def die_with_parent(parent: str | None) -> None:
    """Linux: be killed when the process that started this rank dies, even while stopped or
    stuck (a closed connection is noticed only by a rank that runs). ``parent``: its pid as
    the launcher wrote it (GPUFABRIC_RANK_PARENT); absent for ranks started by others."""
    if not parent or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent):  # it died before prctl took effect
        os._exit(EXIT_CONTROLLER_GONE)


def _connect(host: str, port: int, deadline_s: float) -> socket.socket:
    """Connect, retrying while the network is not there yet (a pod's may come up late). A
    refused connection is final: the controller listens before any rank starts, so nobody
    listening means it is gone."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            sock = socket.create_connection((host, port), timeout=10)
        except ConnectionRefusedError:
            print(f"gpufabric rank: nothing listens at {host}:{port}: the controller is gone")
            os._exit(EXIT_CONTROLLER_GONE)
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
            continue
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
