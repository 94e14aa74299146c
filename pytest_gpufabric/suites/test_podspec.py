"""The training pod spec the jobs on these nodes will run (``--gpufabric-podspec``, or the
kubernetes launcher's pod template) fits the instance profile: GPUs, EFA/RDMA devices,
IPC_LOCK, /dev/shm, hostIPC, NCCL variables that force a fallback, privileged."""

from __future__ import annotations

from pytest_gpufabric import Fabric


def test_pod_spec(gpufabric: Fabric) -> None:
    gpufabric.check_pod_spec()
