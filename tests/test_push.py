"""Pushes to a real Prometheus Pushgateway (Debian's prometheus-pushgateway, started here on a
free localhost port, in memory only), read back from its /metrics as Prometheus would."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_gpufabric.report.metrics import _family
from pytest_gpufabric.report.push import PushError, push

BINARY = "prometheus-pushgateway"
READY_WITHIN_S = 15.0
_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


@dataclass(frozen=True)
class Gateway:
    url: str
    stderr: Path

    def samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        """The samples of metric ``name`` that the gateway exposes to a scrape."""
        scrape = f"{self.url}/metrics"
        with urllib.request.urlopen(scrape, timeout=10) as response:  # noqa: S310 (http)
            text = response.read().decode("utf-8")
        found = []
        for line in text.splitlines():
            match = _SAMPLE.fullmatch(line)
            if line.startswith("#") or match is None or match[1] != name:
                continue
            labels = {
                k: re.sub(r"\\[\\\"n]", lambda m: _UNESCAPE[m[0]], v)
                for k, v in _LABEL.findall(match[2] or "")
            }
            found.append((labels, float(match[3])))
        return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    binary = shutil.which(BINARY) or shutil.which(BINARY, path="/usr/bin")
    if binary is None:
        pytest.skip(f"{BINARY} is not installed (apt-get install prometheus-pushgateway)")
    home = tmp_path_factory.mktemp("pushgateway")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    stderr = home / "stderr.log"
    # Debian's default --persistence.file is /var/lib/prometheus/pushgateway.data: empty it,
    # so that the gateway keeps metrics in memory and starts empty.
    argv = [binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="]
    with stderr.open("wb") as log:
        process = subprocess.Popen(argv, cwd=home, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + READY_WITHIN_S
        while True:
            try:
                ready = f"{url}/-/ready"
                with urllib.request.urlopen(ready, timeout=1) as response:  # noqa: S310 (http)
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                state = "exited" if process.poll() is not None else "not ready"
                pytest.fail(f"{BINARY} {state} after {argv}:\n{stderr.read_text()}")
            time.sleep(0.05)  # the bounded wait for start-up
        yield Gateway(url, stderr)
    finally:
        process.kill()
        process.wait(timeout=30)


def _text(*families: list[str]) -> str:
    """A metrics text as metrics.render() writes it."""
    return "\n".join(line for family in families for line in family) + "\n"


def test_the_run_metrics_land_in_their_group_with_job_and_instance_labels(
    gateway: Gateway,
) -> None:
    text = _text(
        _family("certified", "gauge", "1 when the run was CERTIFIED, else 0.",
                [({"instance": "p4d.24xlarge", "node": "n1"}, 0.0)]),
        _family("latency_us", "gauge", "Time per call of a small collective (µs, slowest rank).",
                [({"collective": "all_reduce", "bytes": 8}, 18.4)]),
        _family("fleet_node_bad", "gauge", "1 when fleet mode found the node bad, 0 when cleared.",
                [({"node": "n1"}, 0.0), ({"node": "n2"}, 1.0)]),
    )  # fmt: skip
    pushed = push(gateway.url, text, grouping={"instance": "fleet-nightly"})
    assert pushed == f"{gateway.url}/metrics/job/gpufabric/instance/fleet-nightly"
    group = {"job": "gpufabric", "instance": "fleet-nightly"}
    assert gateway.samples("gpufabric_fleet_node_bad") == [
        ({**group, "node": "n1"}, 0.0),
        ({**group, "node": "n2"}, 1.0),
    ]
    assert gateway.samples("gpufabric_latency_us") == [
        ({"bytes": "8", "collective": "all_reduce", **group}, 18.4)
    ]
    # The grouping label wins over the sample's own label of that name, silently (the
    # documented behaviour): the instance type p4d.24xlarge is lost.
    assert gateway.samples("gpufabric_certified") == [({**group, "node": "n1"}, 0.0)]
    [(_, pushed_at)] = [s for s in gateway.samples("push_time_seconds") if s[0] == group]
    assert pushed_at > 1.7e9


def test_a_grouping_value_with_a_slash_goes_as_base64_and_comes_back(gateway: Gateway) -> None:
    text = _text(_family("tests_failed", "gauge", "Tests that failed in the run.",
                         [({"node": "n1"}, 2.0)]))  # fmt: skip
    pushed = push(gateway.url, text, job="nightly/p5", grouping={"instance": "rack7/n1"})
    # urlsafe base64 of "nightly/p5" and "rack7/n1"
    path = "job@base64/bmlnaHRseS9wNQ==/instance@base64/cmFjazcvbjE="
    assert pushed == f"{gateway.url}/metrics/{path}"
    assert gateway.samples("gpufabric_tests_failed") == [
        ({"instance": "rack7/n1", "job": "nightly/p5", "node": "n1"}, 2.0)
    ]


def test_a_malformed_text_is_refused_with_the_gateways_reason_on_one_line(
    gateway: Gateway,
) -> None:
    text = "# TYPE gpufabric_x gauge\ngpufabric_x{ 1\n"
    with pytest.raises(PushError) as refused:
        push(gateway.url, text, grouping={"instance": "malformed"})
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(
        f"Pushgateway {gateway.url}/metrics/job/gpufabric/instance/malformed: HTTP 400: "
        "text format parsing error in line 2: "
    )
    assert refused.value.url == f"{gateway.url}/metrics/job/gpufabric/instance/malformed"
    assert gateway.samples("gpufabric_x") == []


def test_a_type_inconsistent_with_another_group_is_refused(gateway: Gateway) -> None:
    gauge = "# TYPE gpufabric_typed gauge\ngpufabric_typed 1\n"
    push(gateway.url, gauge, grouping={"instance": "typed-a"})
    # Which of the two samples the gateway blames varies from run to run (Go's map order).
    with pytest.raises(PushError, match=r"HTTP 400: pushed metrics are invalid or inconsistent "
                       r'with existing metrics: collected metric "gpufabric_typed" .* is not a '
                       r"(GAUGE|COUNTER)$"):  # fmt: skip
        push(gateway.url, gauge.replace("gauge", "counter"), grouping={"instance": "typed-b"})


def test_a_second_push_to_the_group_replaces_the_first(gateway: Gateway) -> None:
    group = {"instance": "replaced"}
    first = _text(_family("certified", "gauge", "1 when the run was CERTIFIED, else 0.",
                          [({"node": "n1"}, 1.0)]),
                  _family("tests_failed", "gauge", "Tests that failed in the run.",
                          [({"node": "n1"}, 0.0)]))  # fmt: skip
    second = _text(_family("certified", "gauge", "1 when the run was CERTIFIED, else 0.",
                           [({"node": "n1"}, 0.0)]))  # fmt: skip
    push(gateway.url, first, grouping=group)
    push(gateway.url, second, grouping=group)

    def in_group(name: str) -> list[float]:
        return [v for labels, v in gateway.samples(name) if labels["instance"] == "replaced"]

    assert in_group("gpufabric_certified") == [0.0]
    assert in_group("gpufabric_tests_failed") == []  # PUT: absent from the second push


def test_a_closed_port_is_named_at_once() -> None:
    # Bound but not listening: connections are refused, and no one else can take the port.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(PushError) as refused:
            push(url, "gpufabric_x 1\n", timeout_s=2.0)
        assert time.monotonic() - start < 2.0
    assert str(refused.value) == (
        f"Pushgateway {url}/metrics/job/gpufabric: ConnectionRefusedError: "
        "[Errno 111] Connection refused"
    )


def test_a_gateway_that_never_answers_fails_after_the_timeout() -> None:
    # Listening but never accepting: the kernel completes the connection, no answer comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(PushError) as late:
            push(url, "gpufabric_x 1\n", timeout_s=0.3)
        assert 0.25 < time.monotonic() - start < 5.0
    assert str(late.value) == f"Pushgateway {url}/metrics/job/gpufabric: no answer within 0.3 s"


@pytest.mark.parametrize(
    ("url", "grouping", "reason"),
    [
        ("localhost:9091", {}, "bad URL"),
        ("file:///etc/passwd", {}, "bad URL"),
        ("http://[::1", {}, "bad URL: Invalid IPv6 URL"),
        ("http://localhost:9091", {"rack/row": "7"}, "bad grouping label name 'rack/row'"),
        ("http://localhost:9091", {"job": "other"}, "bad grouping label name 'job'"),
    ],
)
def test_what_cannot_be_pushed_is_refused_before_any_request(
    url: str, grouping: dict[str, str], reason: str
) -> None:
    with pytest.raises(PushError, match=re.escape(f"Pushgateway {url}: {reason}")):
        push(url, "gpufabric_x 1\n", grouping=grouping)


def _replay_pushing_to(pytester: pytest.Pytester, url: str) -> pytest.RunResult:
    """The latency suite on the replayed 2 × H200 run K, pushing its metrics to ``url``."""
    repo = Path(__file__).resolve().parent.parent
    return pytester.runpytest(
        str(repo / "suites" / "test_latency.py"), "-p", "no:cacheprovider",
        f"--gpufabric-replay={repo / 'tests/data/runs/2026-11-30-h200x2-K/healthy1'}",
        f"--gpufabric-thresholds={repo / 'validation/profiles-lab2'}",
        "--gpufabric-instance=h200-2gpu-lab", f"--gpufabric-pushgateway={url}",
    )  # fmt: skip


def test_a_run_pushes_its_verdict_to_the_gateway(
    gateway: Gateway, pytester: pytest.Pytester
) -> None:
    """--gpufabric-pushgateway: the replayed 2 × H200 run K lands in the group of its profile."""
    result = _replay_pushing_to(pytester, gateway.url)
    assert "ERROR: gpufabric" not in result.stdout.str()
    latency = gateway.samples("gpufabric_latency_us")
    mine = [
        (labels, v) for labels, v in latency if labels.get("gpufabric_profile") == "h200-2gpu-lab"
    ]
    assert ({"collective": "all_reduce", "bytes": "8", "gpufabric_profile": "h200-2gpu-lab",
             "job": "gpufabric", "instance": ""}, 18.4) in mine  # fmt: skip


def test_a_gateway_that_is_down_is_one_error_line_and_the_run_goes_on(
    pytester: pytest.Pytester,
) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    result = _replay_pushing_to(pytester, url)
    result.stdout.fnmatch_lines(
        [
            f"ERROR: gpufabric: Pushgateway {url}/metrics/job/gpufabric/gpufabric_profile/"
            "h200-2gpu-lab: *Connection refused*"
        ]
    )
