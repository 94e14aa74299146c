"""The pod-spec preflight (pytest_gpufabric.podspec): seed 000 first, then one manifest per
situation, the inline corner cases, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_gpufabric.podspec import PodspecError, PodspecReport, lint_file, profile_from_spec
from pytest_gpufabric.podspec.__main__ import main
from pytest_gpufabric.podspec.instance import profile_by_name
from pytest_gpufabric.podspec.quantity import parse_count, parse_quantity

DATA = Path(__file__).parent / "data"
SPECS = DATA / "podspecs"
SEED = DATA / "seeds" / "000_c5442fdf6457d6ce.txt"
SEED_BLOCK = (60, 99)  # the seed's "### Pod Spec" block, between its ``` fences

Found = set[tuple[str, int, str]]


def found(report: PodspecReport) -> Found:
    return {(f.rule, f.line, f.severity) for f in report.findings}


def seed_block() -> list[str]:
    first, last = SEED_BLOCK
    return SEED.read_text(encoding="utf-8").splitlines()[first - 1 : last]


# --- seed 000 -------------------------------------------------------------------------------


def test_seed000_file_is_the_seed_block_verbatim() -> None:
    lines = (SPECS / "seed000-pod.yaml").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# Verbatim from tests/data/seeds/000_c5442fdf6457d6ce.txt")
    assert lines[1:] == seed_block()
    repaired = (SPECS / "seed000-pod-repaired.yaml").read_text(encoding="utf-8").splitlines()
    assert repaired[3:6] == ["apiVersion: v1", "kind: Pod", "metadata:"]
    assert repaired[6:] == seed_block()  # only the three lost header lines were added


def test_seed000_verbatim_is_not_valid_yaml_and_says_why() -> None:
    """The block starts inside ``metadata:`` (its key line was not pasted), so ``spec:`` at
    column 1 ends the document early: a clear one-line error at that line."""
    path = SPECS / "seed000-pod.yaml"
    with pytest.raises(PodspecError) as info:
        lint_file(path, None)
    message = str(info.value)
    assert message.startswith(f"{path}:8: not valid YAML: expected '<document start>'")
    assert "'metadata:', looks cut off" in message
    assert "\n" not in message
    assert isinstance(info.value, ValueError)
    with pytest.raises(PodspecError):
        profile_from_spec(path)


def test_seed000_findings() -> None:
    """Passes: 4 EFA with IPC_LOCK, a 64Gi memory emptyDir at /dev/shm (p4d asks 1 GiB),
    hostIPC for a split node, NCCL_P2P_LEVEL=NVL. Flagged: see docs/podspec.md."""
    report = lint_file(SPECS / "seed000-pod-repaired.yaml", None)
    assert found(report) == {
        ("pod-shape", 14, "error"),  # containers: is a mapping (the "- name:" line is lost)
        ("gpu-count", 21, "warning"),  # 4 of 8 GPUs: the node is split into pods
        ("rdma-devices", 22, "warning"),  # all 4 EFA for half the GPUs
        ("shm-hostipc", 30, "info"),  # the emptyDir hides the node's /dev/shm from hostIPC
    }
    assert report.profile_used is not None
    assert report.profile_used.name == "p4d.24xlarge"
    by_rule = {f.rule: f for f in report.findings}
    assert "4 of the 8 GPUs" in by_rule["gpu-count"].message
    assert "gpu.count in thresholds/p4d.24xlarge.yaml:17" in by_rule["gpu-count"].message
    assert "share (2)" in by_rule["rdma-devices"].message
    assert by_rule["gpu-count"].where == "Pod llama-3-8b-node-0-0-z59th"
    assert by_rule["shm-hostipc"].where == "Pod llama-3-8b-node-0-0-z59th / container #1"
    assert [f.rule for f in report.errors] == ["pod-shape"]


def test_seed000_with_the_container_as_a_list_only_keeps_the_split(tmp_path: Path) -> None:
    text = (SPECS / "seed000-pod-repaired.yaml").read_text(encoding="utf-8")
    fixed = tmp_path / "seed-fixed.yaml"
    fixed.write_text(
        text.replace("  containers:\n    env:", "  containers:\n  - name: pytorch\n    env:")
    )
    report = lint_file(fixed, None)
    assert {f.rule for f in report.findings} == {"gpu-count", "rdma-devices", "shm-hostipc"}
    assert not report.errors


# --- one manifest per situation -------------------------------------------------------------

EXPECTED: dict[str, Found] = {
    "p4d-8gpu-healthy.yaml": set(),
    "dra-claims.yaml": set(),
    "job-p5.yaml": {
        ("env-from", 30, "info"),
        ("nccl-env", 35, "warning"),  # NCCL_ALGO=Ring
        ("nccl-env", 37, "info"),  # NCCL_PROTO=^LL128
        ("nccl-env", 39, "warning"),  # NCCL_SOCKET_IFNAME=ens32: no such interface in a pod
        ("nccl-env", 41, "warning"),  # NCCL_MAX_NCHANNELS=4
        ("shm-unbounded", 56, "info"),
    },
    "jobset-p5.yaml": {
        ("profile", 15, "info"),  # the CPU driver: no GPUs, not pinned
        ("ipc-lock", 34, "error"),
        ("nccl-env", 38, "error"),  # NCCL_NET=Socket
        ("nccl-env", 40, "error"),  # NCCL_NET_PLUGIN=none
        ("rdma-devices", 42, "error"),  # no vpc.amazonaws.com/efa
    },
    "deployment-nd-h100.yaml": {
        ("nccl-env", 26, "error"),  # NCCL_IB_DISABLE=1 on InfiniBand
        ("privileged", 32, "warning"),
    },
    "list-live-pods.yaml": {
        ("host-ipc", 42, "warning"),
        ("gpu-count", 52, "warning"),
        ("rdma-devices", 53, "warning"),
        ("shm-medium", 79, "warning"),
        ("host-ipc", 114, "warning"),
        ("gpu-count", 120, "warning"),
        ("rdma-devices", 121, "warning"),
        ("shm-medium", 132, "warning"),
    },
    "dra-missing-claim.yaml": {
        ("dra-claim", 22, "info"),
        ("rdma-devices", 30, "error"),
    },
    "no-shm.yaml": {("shm-missing", 10, "error")},
    "p2p-disable.yaml": {
        ("nccl-env", 15, "error"),  # NCCL_P2P_DISABLE=1
        ("nccl-env", 17, "error"),  # NCCL_P2P_LEVEL=LOC
        ("nccl-env", 19, "warning"),  # NCCL_SHM_DISABLE=1
        ("nccl-env", 21, "info"),  # NCCL_IB_DISABLE=1: no effect on aws-ofi-nccl
        ("nccl-env", 23, "info"),  # NCCL_CUMEM_ENABLE=0
    },
    "privileged.yaml": {("privileged", 17, "warning")},
    "pytorchjob-p4de.yaml": {
        ("nccl-env", 20, "error"),  # FI_PROVIDER=tcp
        ("shm-size", 33, "error"),  # 512Mi < 1 GiB
        ("nccl-env", 46, "error"),  # FI_EFA_USE_DEVICE_RDMA=0
        ("gpu-count", 49, "error"),  # 16 GPUs on an 8-GPU node
        ("resource-requests", 52, "error"),  # requests 8, limits 16
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_manifest_findings(name: str) -> None:
    assert found(lint_file(SPECS / name, None)) == EXPECTED[name]


def test_every_manifest_is_covered() -> None:
    lintable = {p.name for p in SPECS.glob("*.yaml")} - {
        "seed000-pod.yaml", "seed000-pod-repaired.yaml", "broken.yaml", "unknown-kind.yaml",
    }  # fmt: skip
    assert lintable == set(EXPECTED)


def test_live_objects_are_read_by_spec_only() -> None:
    """managedFields mention NCCL_P2P_DISABLE and status says Running: neither matters."""
    report = lint_file(SPECS / "list-live-pods.yaml", None)
    assert not any("P2P_DISABLE" in f.message for f in report.findings)
    assert {c.where for c in report.choices} == {
        "Pod llama-3-8b-node-0-0-x7k2p",
        "Pod llama-3-8b-node-1-0-m4r8d",
    }


def test_jobset_names_its_replicated_jobs() -> None:
    report = lint_file(SPECS / "jobset-p5.yaml", None)
    assert report.profile_used is None  # the driver is pinned nowhere, the workers to p5
    wheres = {f.where for f in report.findings}
    assert "JobSet llama-3-70b / workers / container pytorch" in wheres
    assert [c.profile.name if c.profile else None for c in report.choices] == [None, "p5.48xlarge"]


def test_messages_cite_the_profile_file_and_line() -> None:
    report = lint_file(SPECS / "no-shm.yaml", None)
    (finding,) = report.findings
    assert "host.shm_min_gib in thresholds/p4d.24xlarge.yaml:105" in finding.message
    assert "64 MiB" in finding.message
    assert "emptyDir" in finding.remedy


# --- inline corner cases --------------------------------------------------------------------

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: t
spec:
{selector}  containers:
  - name: c
    image: i
{env}    resources:
      limits:
        nvidia.com/gpu: {gpus}
        vpc.amazonaws.com/efa: {efa}
{limits}    securityContext:
      capabilities:
        add: [IPC_LOCK]
    volumeMounts:
    - name: dshm
      mountPath: /dev/shm
{pod}  volumes:
  - name: dshm
    emptyDir:
      medium: Memory
      sizeLimit: {shm}
"""


def pod(
    tmp_path: Path,
    *,
    instance: str | None = "p4d.24xlarge",
    gpus: int = 8,
    efa: int = 4,
    shm: str = "64Gi",
    env: dict[str, str] | None = None,
    limits: str = "",
    pod_keys: str = "",
) -> Path:
    selector = (
        f"  nodeSelector:\n    node.kubernetes.io/instance-type: {instance}\n" if instance else ""
    )
    env_text = "".join(
        f"    - name: {k}\n      value: {json.dumps(v)}\n" for k, v in (env or {}).items()
    )
    path = tmp_path / "pod.yaml"
    path.write_text(
        POD.format(
            selector=selector,
            env=f"    env:\n{env_text}" if env_text else "",
            gpus=gpus,
            efa=efa,
            limits=limits,
            pod=pod_keys,
            shm=shm,
        )
    )
    return path


def rules(path: Path, profile_name: str | None = None) -> set[tuple[str, str]]:
    profile = profile_by_name(profile_name) if profile_name else None
    return {(f.rule, f.severity) for f in lint_file(path, profile).findings}


def test_the_inline_pod_is_clean(tmp_path: Path) -> None:
    assert rules(pod(tmp_path)) == set()


def test_unpinned_pod_is_not_judged_against_a_guess(tmp_path: Path) -> None:
    path = pod(tmp_path, instance=None, gpus=16, efa=0)
    report = lint_file(path, None)
    assert found(report) == {("profile", 5, "info")}
    assert "not checked: gpu-count, rdma-devices" in report.findings[0].message
    assert report.profile_used is None
    assert profile_from_spec(path) is None


def test_pinned_to_an_instance_without_profile(tmp_path: Path) -> None:
    path = pod(tmp_path, instance="g5.48xlarge")
    assert profile_from_spec(path) == "g5.48xlarge"
    (finding,) = lint_file(path, None).findings
    assert finding.rule == "profile"
    assert "g5.48xlarge" in finding.message
    assert finding.line == 7  # the nodeSelector value


def test_instance_flag_against_another_pin_warns(tmp_path: Path) -> None:
    assert rules(pod(tmp_path), "p5.48xlarge") == {
        ("instance-mismatch", "warning"),
        ("rdma-devices", "warning"),  # 4 EFA where a p5 node's 8 GPUs have 32
    }


@pytest.mark.parametrize(
    ("gpus", "efa", "expected"),
    [
        (0, 4, {("gpu-count", "error")}),
        (9, 4, {("gpu-count", "error")}),
        (8, 5, {("rdma-devices", "error")}),
        (8, 2, {("rdma-devices", "warning")}),
        (8, 0, {("rdma-devices", "error")}),
        (4, 2, {("gpu-count", "warning"), ("host-ipc", "warning")}),
    ],
)
def test_device_counts(tmp_path: Path, gpus: int, efa: int, expected: set[tuple[str, str]]) -> None:
    assert rules(pod(tmp_path, gpus=gpus, efa=efa)) == expected


def test_host_ipc_without_a_split_is_noted(tmp_path: Path) -> None:
    assert rules(pod(tmp_path, pod_keys="  hostIPC: true\n")) == {("host-ipc", "info")}


def test_shm_sizes(tmp_path: Path) -> None:
    assert rules(pod(tmp_path, shm="512Mi")) == {("shm-size", "error")}
    assert rules(pod(tmp_path, shm="1Gi")) == set()
    assert rules(pod(tmp_path, shm="lots")) == {("shm-size", "warning")}
    too_small = pod(tmp_path, shm="64Gi", limits="        memory: 32Gi\n")
    assert rules(too_small) == {("shm-memory", "warning")}


def test_a_site_profile_file_sets_its_own_shm_minimum(tmp_path: Path) -> None:
    site = tmp_path / "site" / "p4d.24xlarge.yaml"  # a profile file is named after it
    site.parent.mkdir()
    site.write_text(
        "name: p4d.24xlarge\nextends: p4d.24xlarge\n"
        "host:\n  source: site rule, 128 GiB for the data loaders\n  shm_min_gib: 128\n"
    )
    spec = pod(tmp_path)
    assert main([str(spec), "--profile", str(site)]) == 1
    report = lint_file(spec, None)
    assert not report.findings  # the shipped profile asks 1 GiB


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"NCCL_P2P_LEVEL": "NVL"}, set()),
        ({"NCCL_P2P_LEVEL": "SYS"}, set()),  # SYS allows more P2P than NVL, never less
        ({"NCCL_P2P_LEVEL": "PIX"}, set()),
        ({"NCCL_P2P_LEVEL": "0"}, {("nccl-env", "error")}),
        ({"NCCL_P2P_LEVEL": "2"}, {("nccl-env", "info")}),
        ({"NCCL_P2P_LEVEL": "FAST"}, {("nccl-env", "warning")}),
        ({"NCCL_P2P_DISABLE": "0"}, set()),
        ({"NCCL_P2P_DISABLE": "true"}, set()),  # not an integer: NCCL ignores it
        ({"NCCL_NET": "AWS Libfabric"}, set()),
        ({"NCCL_NET": "IB"}, {("nccl-env", "error")}),
        ({"NCCL_NET_PLUGIN": "ofi"}, set()),
        ({"NCCL_NET_PLUGIN": "gdrcopy"}, {("nccl-env", "warning")}),
        ({"FI_PROVIDER": "efa"}, set()),
        ({"NCCL_NET_GDR_LEVEL": "LOC"}, {("nccl-env", "error")}),
        ({"NCCL_NVLS_ENABLE": "1"}, {("nccl-env", "info")}),  # A100: no NVLS
        ({"NCCL_SOCKET_IFNAME": "^docker0,lo"}, set()),  # the seed's image sets this
        ({"NCCL_SOCKET_IFNAME": "eth"}, set()),
        ({"NCCL_SOCKET_IFNAME": "^eth"}, {("nccl-env", "warning")}),
        ({"NCCL_SOCKET_IFNAME": "=eth1"}, {("nccl-env", "warning")}),
        ({"NCCL_MAX_NCHANNELS": "32"}, set()),
        ({"NCCL_DEBUG": "INFO"}, set()),
    ],
)
def test_env_variables(tmp_path: Path, env: dict[str, str], expected: set[tuple[str, str]]) -> None:
    assert rules(pod(tmp_path, env=env)) == expected


def test_nvls_off_where_the_profile_uses_it(tmp_path: Path) -> None:
    path = pod(tmp_path, instance="Standard_ND96isr_H100_v5", env={"NCCL_NVLS_ENABLE": "0"})
    text = path.read_text().replace("vpc.amazonaws.com/efa: 4", "rdma/ib: 1")
    path.write_text(text)
    assert rules(path) == {("nccl-env", "warning")}


def test_ib_without_hca_resource(tmp_path: Path) -> None:
    path = pod(tmp_path, instance="Standard_ND96asr_v4")
    path.write_text(path.read_text().replace("        vpc.amazonaws.com/efa: 4\n", ""))
    assert rules(path) == {("rdma-devices", "error")}


def test_value_from_and_requests_without_limits(tmp_path: Path) -> None:
    path = pod(tmp_path)
    text = path.read_text().replace(
        "    resources:\n",
        "    env:\n    - name: NCCL_NET\n      valueFrom:\n        configMapKeyRef:\n"
        "          name: nccl\n          key: net\n    resources:\n      requests:\n"
        "        vpc.amazonaws.com/efa: 4\n        nvidia.com/gpu: 8\n",
    )
    path.write_text(
        text.replace("        vpc.amazonaws.com/efa: 4\n    securityContext", "    securityContext")
    )
    assert found(lint_file(path, None)) == {
        ("env-from", 12, "info"),  # the "- name: NCCL_NET" item
        ("resource-requests", 19, "error"),  # efa requested, no limit
        ("rdma-devices", 21, "error"),  # at "limits:", which lacks the EFA resource
    }


@pytest.mark.parametrize(
    ("header", "indent"),
    [
        ("apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: x}\nspec:\n  jobTemplate:\n"
         "    spec:\n      template:\n", 8),
        ("apiVersion: v1\nkind: PodTemplate\nmetadata: {name: x}\ntemplate:\n", 2),
        ("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec:\n  template:\n", 4),
        ("apiVersion: leaderworkerset.x-k8s.io/v1\nkind: LeaderWorkerSet\nmetadata: {name: x}\n"
         "spec:\n  leaderWorkerTemplate:\n    workerTemplate:\n", 6),
        ("apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: x}\nspec:\n"
         "  template:\n", 4),
    ],
)  # fmt: skip
def test_workload_kinds(tmp_path: Path, header: str, indent: int) -> None:
    """Every kind finds its pod template (``indent``: where the template's keys stand)."""
    body = "\n".join(
        " " * indent + line
        for line in (
            "spec:\n  nodeSelector: {node.kubernetes.io/instance-type: p4d.24xlarge}\n"
            "  containers:\n  - name: c\n    resources: {limits: {nvidia.com/gpu: 8, "
            "vpc.amazonaws.com/efa: 4}}\n    securityContext: {capabilities: {add: [IPC_LOCK]}}"
        ).splitlines()
    )
    path = tmp_path / "w.yaml"
    path.write_text(header + body + "\n")
    report = lint_file(path, None)
    assert {f.rule for f in report.findings} == {"shm-missing"}, report.render()
    assert report.profile_used is not None


def test_trainjob_points_at_its_runtime(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "apiVersion: trainer.kubeflow.org/v1alpha1\nkind: TrainJob\nmetadata: {name: t}\n"
        "spec:\n  runtimeRef: {name: torch-distributed}\n  trainer: {numNodes: 2}\n"
    )
    with pytest.raises(PodspecError, match=r"t\.yaml:1: no pod template found: TrainJob: .*"
                       r"torch-distributed; lint that file"):  # fmt: skip
        lint_file(path, None)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no pod template found (kinds: no documents)"),
        ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n", "(kinds: Service)"),
        ("kind: Pod\nmetadata: {name: p}\n", "1: no pod template found: Pod without spec"),
    ],
)
def test_files_without_a_pod_template(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(PodspecError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        lint_file(path, None)


def test_quantities() -> None:
    assert parse_quantity("64Gi") == 64 * 2**30
    assert parse_quantity("1e9") == 1e9
    assert parse_quantity("500M") == 5e8
    assert parse_quantity("lots") is None
    assert parse_count("4") == 4
    assert parse_count("1.5") is None


# --- the CLI --------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_gpufabric.podspec", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parent.parent,
    )


def test_cli_exit_codes_and_text() -> None:
    clean = run_cli("tests/data/podspecs/p4d-8gpu-healthy.yaml")
    assert clean.returncode == 0, clean.stderr
    assert clean.stdout.rstrip().endswith("PASS: 0 errors, 0 warnings, 0 info")
    warned = run_cli("tests/data/podspecs/privileged.yaml")
    assert warned.returncode == 0
    failed = run_cli("tests/data/podspecs/seed000-pod-repaired.yaml")
    assert failed.returncode == 1
    assert "seed000-pod-repaired.yaml:14: error [pod-shape]" in failed.stdout
    assert "    remedy: " in failed.stdout
    assert failed.stderr == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tests/data/podspecs/seed000-pod.yaml"], "tests/data/podspecs/seed000-pod.yaml:8: not valid YAML"),
        (["tests/data/podspecs/broken.yaml"], "tests/data/podspecs/broken.yaml:11: not valid YAML"),
        (["tests/data/podspecs/missing.yaml"], "tests/data/podspecs/missing.yaml: no such file"),
        (["tests/data/podspecs/unknown-kind.yaml"], "unknown-kind.yaml:3: no pod template found: RayService"),
        (["tests/data/podspecs/no-shm.yaml", "--instance", "p9.96xlarge"], "--instance p9.96xlarge: no such instance profile"),
        (["tests/data/podspecs/no-shm.yaml", "--profile", "tests/data/profiles/broken/yaml-syntax.yaml"], "yaml-syntax.yaml"),
    ],
)  # fmt: skip
def test_cli_usage_errors_are_one_line(args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(SPECS / "seed000-pod-repaired.yaml"), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["profile"]["name"] == "p4d.24xlarge"
    assert data["counts"] == {"error": 1, "warning": 2, "info": 1}
    assert data["ok"] is False
    assert [(f["rule"], f["line"]) for f in data["findings"]] == [
        ("pod-shape", 14), ("gpu-count", 21), ("rdma-devices", 22), ("shm-hostipc", 30),
    ]  # fmt: skip
    assert set(data["findings"][0]) == {"severity", "rule", "line", "where", "message", "remedy"}


def test_cli_instance_overrides_the_selector(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(SPECS / "p4d-8gpu-healthy.yaml"), "--instance", "p4de.24xlarge"]) == 0
    out = capsys.readouterr().out
    assert "profile p4de.24xlarge" in out
    assert "[instance-mismatch]" in out
