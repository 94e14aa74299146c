"""The real single-node Kubernetes 1.20 of ../shared/k8s, for the kubernetes launcher's tests.

``.ci/k8s-prepare`` builds its binaries once (cached in $K8S_HOME) and makes the venv its pods
use; the ``k8s`` fixture (conftest.py) starts the cluster for the test session when it is not
running and stops it (by the PIDs its scripts recorded) when the session ends. Without root,
the recipe, the binaries or the pod venv the tests are skipped, saying which is missing.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RECIPE = Path(os.environ.get("GPUFABRIC_K8S_RECIPE") or REPO.parent / "shared" / "k8s")
K8S_HOME = Path(os.environ.get("K8S_HOME") or Path.home() / ".cache" / "gpufabric-k8s")
KUBECONFIG = K8S_HOME / "run" / "admin.kubeconfig"
VENV = K8S_HOME / "venv"  # made from /usr/bin/python3: pods see the host's /usr only
TEMPLATE = Path(__file__).with_name("pod-template.yaml")
SUITES = REPO / "pytest_gpufabric" / "suites"
CPU_PROFILES = REPO / "tests" / "data" / "profiles" / "cpu"
WORKER = "pytest_gpufabric.rank.worker"


def missing() -> str | None:
    """Why the cluster cannot run here, or None."""
    if os.geteuid() != 0:
        return "the local Kubernetes cluster needs root"
    if not (RECIPE / "start-cluster.sh").is_file():
        return f"no cluster recipe at {RECIPE} (GPUFABRIC_K8S_RECIPE)"
    if not os.access(K8S_HOME / "bin" / "kubelet", os.X_OK):
        return f"no cluster binaries in {K8S_HOME / 'bin'}: run .ci/k8s-prepare"
    if not (VENV / "bin" / "python").is_file():
        return f"no pod venv at {VENV}: run .ci/k8s-prepare"
    return None


def running() -> bool:
    """The cluster answers (a previous start, e.g. by a developer, is reused as it is)."""
    if not KUBECONFIG.is_file():
        return False
    from kubernetes import client, config

    try:
        api = config.new_client_from_config(str(KUBECONFIG))  # type: ignore[no-untyped-call]
        with api:
            client.CoreV1Api(api).list_namespace(limit=1, _request_timeout=5)
    except Exception:
        return False
    return True


SHIM = Path(__file__).with_name("shim")  # ctr without a SIGPIPE race (shim/ctr says why)


def script_env(**env: str) -> dict[str, str]:
    """The environment of the recipe's scripts."""
    path = f"{SHIM}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "K8S_HOME": str(K8S_HOME), "PATH": path, **env}


def script(name: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RECIPE / name)], env=script_env(**env),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@dataclass
class Cluster:
    """A connection to the running cluster (the launcher's own client code)."""

    api: Any  # pytest_gpufabric.launch.kube.api.Api

    def new_namespace(self) -> str:
        name = f"gft-{secrets.token_hex(3)}"
        self.api.core.create_namespace({"metadata": {"name": name}})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # 1.20: pods wait for the default SA's token
            accounts = self.api.core.list_namespaced_service_account(name).items
            if any(a.metadata.name == "default" and a.secrets for a in accounts):
                return name
            time.sleep(0.1)
        raise TimeoutError(f"namespace {name}: no default service account token")

    def objects(self, namespace: str) -> list[str]:
        """Every pod, service and job in the namespace, as kind/name."""
        core, batch = self.api.core, self.api.batch
        found = [f"pod/{p.metadata.name}" for p in core.list_namespaced_pod(namespace).items]
        found += [f"service/{s.metadata.name}"
                  for s in core.list_namespaced_service(namespace).items]  # fmt: skip
        found += [f"job/{j.metadata.name}" for j in batch.list_namespaced_job(namespace).items]
        return found

    def wait_empty(self, namespace: str, timeout_s: float) -> list[str]:
        """Wait until the namespace holds nothing; what is still there at the deadline."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = self.objects(namespace)
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.5)


def worker_processes() -> list[int]:
    """Rank processes anywhere on this machine (pods' processes are the host's too)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if WORKER.encode() in cmdline:
            found.append(int(proc.name))
    return found


def workers_left(timeout_s: float = 30) -> list[int]:
    """Rank processes still alive after up to ``timeout_s``. A pod's object is gone once
    its kubelet has seen the container's first process exit; the kernel then kills the rest
    of the pod's processes (the exec'd ranks) on its own time, which a loaded 2-core
    machine stretches. A rank that lives on past this is a leak."""
    deadline = time.monotonic() + timeout_s
    while (left := worker_processes()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def render_template(directory: Path) -> Path:
    """The tests' pod template with this checkout's and the pod venv's paths filled in."""
    text = TEMPLATE.read_text().replace("${VENV}", str(VENV)).replace("${REPO}", str(REPO))
    path = directory / "pod-template.yaml"
    path.write_text(text)
    return path


def gate_args(namespace: str, template: Path, *extra: str) -> list[str]:
    """The gate on the local cluster with the CPU (gloo) profile that certifies."""
    return [
        "-p", "no:cacheprovider",
        "--gpufabric-launcher=kubernetes",
        f"--gpufabric-k8s-namespace={namespace}",
        f"--gpufabric-k8s-pod-template={template}",
        f"--gpufabric-k8s-python={VENV / 'bin' / 'python'}",
        f"--gpufabric-thresholds={CPU_PROFILES}",
        "--gpufabric-instance=cpu-gloo-certify",
        *extra,
    ]  # fmt: skip
