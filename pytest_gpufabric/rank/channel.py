"""The rank's end of the rank protocol (launch/wire.py): a TCP connection to the controller.

A reader thread owns the connection's input: when the controller disappears (the connection
closes without an Exit), it ends the process at once, also when the main thread is stuck
inside a collective, so a crashed or killed pytest never leaves ranks behind.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from typing import TypeVar

from ..launch.wire import Exit, LineBuffer, Message, ProtocolError, decode, encode

M = TypeVar("M", bound=Message)
EXIT_CONTROLLER_GONE = 70
EXIT_PROTOCOL = 71


class Channel:
    def __init__(self, address: str, deadline_s: float) -> None:
        host, _, port = address.rpartition(":")
        self._sock = _connect(host, int(port), deadline_s)
        self._inbox: queue.Queue[Message] = queue.Queue()
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
        return self._inbox.get()

    def wait_for(self, kind: type[M], timeout_s: float) -> M:
        """The next message of ``kind`` (others are kept in order for later)."""
        deadline = time.monotonic() + timeout_s
        held: list[Message] = []
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {kind.kind} message from the controller in time")
                message = self._inbox.get(timeout=left)
                if isinstance(message, kind):
                    return message
                held.append(message)
        except queue.Empty:
            raise TimeoutError(f"no {kind.kind} message from the controller in time") from None
        finally:
            for message in held:
                self._inbox.put(message)


def _connect(host: str, port: int, deadline_s: float) -> socket.socket:
    """Connect, retrying while the controller is not listening yet (pods may start first)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            sock = socket.create_connection((host, port), timeout=10)
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
            continue
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
