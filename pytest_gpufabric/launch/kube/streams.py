"""Ranks reached through the API server: the controller opens an exec stream into a rank pod
(``kubectl exec -i`` does the same) that runs ``python -m pytest_gpufabric.rank.worker``,
whose stdin and stdout carry the rank protocol (launch/wire.py, rank/channel.py).

Why this way: the controller may sit outside the cluster (a CI runner with only a
kubeconfig), where pods can reach neither it nor it them; the API server is the one thing
both sides reach. The MPI Operator starts its ranks through ``kubectl exec`` for the same
reason. Each stream is relayed to one end of a local socket pair, so the controller's rank
server (launch/controller.py) treats it as any rank connection; when the stream ends the rank
sees its stdin close and exits, and when the controller dies the stream ends with it.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import ssl
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

STDOUT, STDERR, ERROR = 1, 2, 3


def open_exec(
    api: Any, namespace: str, pod: str, container: str, command: Sequence[str], stdin: bool
) -> Any:
    """An exec stream (kubernetes.stream.ws_client.WSClient), binary, not yet read."""
    from kubernetes.stream import stream, ws_client

    with api.exec_lock:  # stream() patches its client while it opens one (api.py)
        client = stream(
            api.exec_core.connect_get_namespaced_pod_exec,
            pod,
            namespace,
            container=container,
            command=list(command),
            stdin=stdin,
            stdout=True,
            stderr=True,
            tty=False,
            binary=True,
            _preload_content=False,
        )
    # The client keeps a copy of all output for read_all(); a rank talks for hours.
    client._all = ws_client._IgnoredIO()
    return client


def close_stream(client: Any) -> None:
    """Close an exec stream and its socket (the client's close() leaves the socket open
    once the server has closed the stream)."""
    with contextlib.suppress(Exception):
        client.close()
    with contextlib.suppress(Exception):
        if client.sock is not None and client.sock.sock is not None:
            client.sock.shutdown()


def run_in_pod(
    api: Any, namespace: str, pod: str, container: str, command: Sequence[str], timeout_s: float
) -> tuple[int | None, bytes, bytes]:
    """Run ``command`` in the pod to its end: (exit code or None, stdout, stderr)."""
    client = open_exec(api, namespace, pod, container, command, stdin=False)
    out, err = bytearray(), bytearray()
    try:
        client.run_forever(timeout=timeout_s)
        out += client.read_channel(STDOUT) or b""
        err += client.read_channel(STDERR) or b""
        code = exit_code(client.read_channel(ERROR))
    finally:
        close_stream(client)
    return code, bytes(out), bytes(err)


def exit_code(status: bytes | str | None) -> int | None:
    """The exit code in an exec stream's status (channel 3): {"status": "Success"} or a
    Failure whose cause NonZeroExitCode carries it; None when the stream said nothing."""
    if not status:
        return None
    try:
        data = json.loads(status)
    except ValueError:
        return None
    if data.get("status") == "Success":
        return 0
    for cause in (data.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            with contextlib.suppress(ValueError, TypeError):
                return int(cause.get("message"))
    return None


def failure(status: bytes | str) -> str:
    """The message of an exec stream's Failure status (e.g. the command does not exist)."""
    try:
        data = json.loads(status)
    except ValueError:
        return str(status)[:300]
    return str(data.get("message") or data.get("reason") or "failed")


class ExecRank:
    """One rank's exec stream relayed to a local socket: ``sock`` goes to the rank server.
    The rank's stderr (its own output) is written to ``out_path``."""

    def __init__(self, client: Any, out_path: Path) -> None:
        self.client = client
        self.sock, self._peer = socket.socketpair()
        self._out: IO[bytes] = out_path.open("ab")
        self.ended: str | None = None  # how the stream ended, once it did
        self.code: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._relay, daemon=True)
        self._thread.start()

    def _relay(self) -> None:
        raw = self.client.sock.sock
        try:
            poller = select.poll()
            poller.register(raw, select.POLLIN)
            poller.register(self._peer, select.POLLIN)
            while not self._stop.is_set() and self.client.is_open():
                pending = isinstance(raw, ssl.SSLSocket) and raw.pending()
                events = [] if pending else poller.poll(250)
                if pending or any(fd == raw.fileno() for fd, _ in events):
                    self.client.update(timeout=0)
                    self._drain()
                if any(fd == self._peer.fileno() for fd, _ in events):
                    data = self._peer.recv(1 << 16)
                    if not data:
                        break  # the controller dropped the rank
                    self.client.write_stdin(data)
            self._drain()
        except Exception as exc:  # socket and websocket errors alike: the rank is cut off
            self.ended = f"its exec stream broke: {type(exc).__name__}: {exc}"
        finally:
            self._finish()

    def _drain(self) -> None:
        """Pass on what update() has read, and only that. read_channel() would read more
        frames itself when a channel is empty: a rank's result read while looking for
        stderr then sat unread in the client until the socket had something new, which an
        idle rank never sends (a 4 KB broadcast's result lost for good in CI)."""
        channels = self.client._channels
        out = channels.pop(STDOUT, None)
        if out:
            self._peer.sendall(out)
        err = channels.pop(STDERR, None)
        if err:
            self._out.write(err)
            self._out.flush()
        status = channels.pop(ERROR, None)
        if status:
            self.code = exit_code(status)
            if self.code is None:
                self.ended = f"could not start: {failure(status)}"

    def _finish(self) -> None:
        if self.ended is None:
            if self.code is not None:
                self.ended = f"exited with code {self.code}"
            elif not self.client.is_open():
                self.ended = "its exec stream closed"
        close_stream(self.client)
        with contextlib.suppress(OSError):
            self._peer.shutdown(socket.SHUT_RDWR)
        self._peer.close()
        with contextlib.suppress(OSError):
            self._out.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        close_stream(self.client)
