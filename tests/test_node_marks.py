"""What --gpufabric-k8s-label-nodes and -taint-failed patch on a node (the patch itself;
tests/k8s/test_kubernetes_fleet.py applies it to the real cluster's nodes)."""

from __future__ import annotations

from pytest_gpufabric.fleet.summary import NodeRow
from pytest_gpufabric.launch.kube.manifests import BAD_TAINT
from pytest_gpufabric.launch.kube.marks import CHECKED_AT, VERDICT_LABEL, WHY, patch_for

BAD = NodeRow("n1", "bad", "failed with n0, n2", "all_reduce 1MiB on 8 rank(s): 3.1 GB/s", (1, 4))
GOOD = NodeRow("n0", "passed", "passed its gate and a pair", "", (1,))
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
OURS = {"key": BAD_TAINT, "value": "fleet", "effect": "NoSchedule"}


def test_nothing_is_patched_unless_asked() -> None:
    assert patch_for(BAD, [GPU_TAINT], 0.0, label=False, taint=False) == {}


def test_the_label_says_the_verdict_and_the_annotations_when_and_why() -> None:
    body = patch_for(BAD, None, 1_796_000_000.0, label=True, taint=False)
    assert body["metadata"]["labels"] == {VERDICT_LABEL: "bad"}
    notes = body["metadata"]["annotations"]
    assert notes[CHECKED_AT] == "2026-11-30T00:53:20Z"
    assert notes[WHY] == "failed with n0, n2; gate all_reduce 1MiB on 8 rank(s): 3.1 GB/s"
    assert "spec" not in body


def test_a_bad_node_is_tainted_and_keeps_its_other_taints() -> None:
    body = patch_for(BAD, [GPU_TAINT], 0.0, label=False, taint=True)
    assert body == {"spec": {"taints": [GPU_TAINT, OURS]}}
    assert patch_for(BAD, [GPU_TAINT, OURS], 0.0, label=False, taint=True) == {}  # already


def test_a_node_that_passes_again_loses_our_taint_only() -> None:
    body = patch_for(GOOD, [OURS, GPU_TAINT], 0.0, label=False, taint=True)
    assert body == {"spec": {"taints": [GPU_TAINT]}}
    assert patch_for(GOOD, [GPU_TAINT], 0.0, label=False, taint=True) == {}
