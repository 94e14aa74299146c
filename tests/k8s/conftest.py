"""Fixtures of the Kubernetes tests: the real local cluster (started once per test session,
stopped at its end unless it was running before) and a fresh namespace per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from k8s import k8s_cluster as k


@pytest.fixture(scope="package")  # stopped as soon as these tests are done
def k8s() -> Iterator[k.Cluster]:
    why = k.missing()
    if why is not None:
        pytest.skip(why)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # One cluster per machine, and the tests count the machine's rank processes and
        # install cluster-wide CRDs: two at a time would see each other's.
        pytest.skip("the Kubernetes tests share one cluster: run them without -n")
    started = False
    if not k.running():
        started = True  # set before starting: a half start is stopped too
        done = k.script("start-cluster.sh")
        if done.returncode != 0:
            k.script("stop-cluster.sh", WIPE="1")
            pytest.fail(f"start-cluster.sh failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    previous = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(k.KUBECONFIG)
    from pytest_gpufabric.launch.kube.api import connect

    api = connect()
    try:
        yield k.Cluster(api)
    finally:
        api.close()
        if previous is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = previous
        if started:
            stopped = k.script("stop-cluster.sh", WIPE="1")
            if stopped.returncode != 0:
                print(f"stop-cluster.sh failed:\n{stopped.stdout}{stopped.stderr}")


@pytest.fixture
def namespace(k8s: k.Cluster) -> Iterator[str]:
    name = k8s.new_namespace()
    yield name
    k8s.api.core.delete_namespace(name, grace_period_seconds=0)


@pytest.fixture
def template(tmp_path: Path) -> Path:
    return k.render_template(tmp_path)
