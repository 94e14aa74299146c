"""The exec stream relay (launch/kube/streams.py ExecRank) against the real API server and
kubelet: every byte a process in a pod writes to stdout reaches the controller's socket,
however its stdout and stderr interleave and however soon it then goes quiet. A rank that
answers a job and then waits for the next one is exactly that; CI once lost a rank's result
this way (a 4 KB broadcast: the result read by accident while looking for stderr, then never
passed on, and the job timed out)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from k8s import k8s_cluster as k
from pytest_gpufabric.launch.kube.streams import ExecRank, open_exec

ROUNDS = 1000
# Per round, as a rank's job: wait for a line on stdin, write one stdout line, a moment
# later (0 to 1.9 ms) another, now and then a stderr line, then go quiet. The relay used to
# lose the second line in some rounds (about one in a few hundred): it arrived while the
# relay looked for stderr.
ECHO = (
    "import os, sys, time\n"
    "for line in sys.stdin:\n"
    "    n = int(line)\n"
    "    os.write(1, f'begun {n}\\n'.encode())\n"
    "    time.sleep(n % 20 * 0.0001)\n"
    "    os.write(1, f'result {n}\\n'.encode())\n"
    "    if n % 10 == 0:\n"
    "        os.write(2, f'note {n}\\n'.encode())\n"
)


@pytest.fixture
def pod(k8s: k.Cluster, namespace: str, tmp_path: Path) -> str:
    spec = yaml.safe_load(k.render_template(tmp_path).read_text())
    spec["metadata"] = {"name": "relay"}
    spec["spec"]["containers"][0]["command"] = ["sleep", "300"]
    k8s.api.core.create_namespaced_pod(namespace, spec)
    deadline = time.monotonic() + 120
    while k8s.api.core.read_namespaced_pod("relay", namespace).status.phase != "Running":
        if time.monotonic() > deadline:
            pytest.fail("pod relay did not start within 120 s")
        time.sleep(0.2)
    return "relay"


def test_every_stdout_byte_reaches_the_controller_before_the_process_goes_quiet(
    k8s: k.Cluster, namespace: str, pod: str, tmp_path: Path
) -> None:
    client = open_exec(k8s.api, namespace, pod, "trainer",
                       [str(k.VENV / "bin" / "python"), "-u", "-c", ECHO], stdin=True)  # fmt: skip
    relay = ExecRank(client, tmp_path / "stderr.log")
    relay.sock.settimeout(10)
    got = b""
    try:
        for n in range(ROUNDS):
            relay.sock.sendall(f"{n}\n".encode())
            want = f"begun {n}\nresult {n}\n".encode()
            while not got.endswith(want):
                try:
                    chunk = relay.sock.recv(1 << 16)
                except TimeoutError:
                    pytest.fail(f"round {n}: the process wrote {want!r} and then waited; the "
                                f"relay passed on only {got[-60:]!r} in 10 s")  # fmt: skip
                assert chunk, f"round {n}: the stream ended ({relay.ended})"
                got += chunk
    finally:
        relay.close()
        relay.sock.close()
    assert got.count(b"result ") == ROUNDS
    assert (tmp_path / "stderr.log").read_bytes().count(b"note ") == ROUNDS // 10
