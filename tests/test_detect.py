"""--gpufabric-instance auto: node label, DMI product name and hardware fingerprint, over real
captures (the 4×H200 host's nvidia-smi XML and the p4d pod spec of seed 000)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_gpufabric.evidence import recorded
from pytest_gpufabric.evidence.probe import (
    LABEL,
    ProbeError,
    parse_podinfo_labels,
    read_dmi_product,
    read_label,
)
from pytest_gpufabric.launch.replay import ReplayLauncher
from pytest_gpufabric.profiles.catalogue import Catalogue, load_catalogue
from pytest_gpufabric.profiles.detect import (
    DetectionError,
    NodeFacts,
    detect,
    facts_of,
    mismatches,
)


def recorded_node(directory: Path) -> NodeFacts:
    """A recorded node as detection sees it, read through the replay launcher."""
    return facts_of(ReplayLauncher(recorded.load(directory)).nodes(detect=True)[0])


SEED = Path(__file__).parent / "data" / "seeds" / "000_c5442fdf6457d6ce.txt"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture
def h200_node(h200_capture: Path) -> NodeFacts:
    """The lab host as its own captures describe it (nvidia-smi -q -x, NVML probe, topo)."""
    return recorded_node(h200_capture / "host")


def test_real_capture_fingerprint_picks_the_lab_profile(
    catalogue: Catalogue, h200_node: NodeFacts
) -> None:
    assert h200_node.gpus == (("NVIDIA H200", 143771),) * 4  # from the -q -x capture
    found = detect(catalogue, h200_node)
    assert found.profile.name == "hgx-h200-4gpu"
    assert found.how == "auto: hardware fingerprint 4 × NVIDIA H200 (140.4 GiB)"


def test_no_rdma_device_tells_the_lab_from_the_8_gpu_h200_instances(
    catalogue: Catalogue, h200_node: NodeFacts
) -> None:
    """Same GPU model: p5e/p5en/ND H200 v5 differ in GPU count and in RDMA devices."""
    node = NodeFacts(h200_node.gpus * 2, "test", rdma={"efa": 32, "ib": 0})
    assert detect(catalogue, node).profile.name == "p5e.48xlarge"
    node = NodeFacts(h200_node.gpus * 2, "test", rdma={"efa": 16, "ib": 0})
    assert detect(catalogue, node).profile.name == "p5en.48xlarge"
    node = NodeFacts(h200_node.gpus * 2, "test", rdma={"efa": 0, "ib": 8})
    assert detect(catalogue, node).profile.name == "Standard_ND96isr_H200_v5"


def test_every_shipped_profile_is_found_from_its_own_facts(catalogue: Catalogue) -> None:
    """A node exactly as a profile describes it is detected as that profile, except the
    pairs the hardware cannot separate, which must be reported as ambiguous."""
    cannot_separate = {frozenset({"a3-highgpu-8g", "a3-megagpu-8g"})}
    for profile in catalogue.profiles.values():
        if not profile.gpu_count:
            continue
        mib = int((profile.gpu_memory_gib or 80) * 1024 * 0.98)
        kind = str(profile.host.rdma_kind.value) if profile.host.rdma_kind else "ib"
        count = profile.host.rdma_devices.integer if profile.host.rdma_devices else 0
        node = NodeFacts(
            ((profile.gpu_model, mib),) * profile.gpu_count, "test", rdma={kind: count}
        )
        if any(profile.name in pair for pair in cannot_separate):
            with pytest.raises(DetectionError, match="fits several profiles") as info:
                detect(catalogue, node)
            names = set(re.findall(r"profiles: ([^;]+);", str(info.value))[0].split(", "))
            assert frozenset(names) in cannot_separate
        else:
            assert detect(catalogue, node).profile.name == profile.name


def test_ambiguous_fingerprint_lists_the_candidates_and_how_to_choose(
    catalogue: Catalogue,
) -> None:
    node = NodeFacts(
        (("NVIDIA H100 80GB HBM3", 81559),) * 8, "NVML on this node", rdma={"ib": 0},
        rdma_origin="/sys/class/infiniband",
    )  # fmt: skip
    with pytest.raises(DetectionError) as info:
        detect(catalogue, node)
    assert str(info.value) == (
        "--gpufabric-instance auto: this node (8 × NVIDIA H100 80GB HBM3 (79.6 GiB), no RDMA "
        "device from NVML on this node and /sys/class/infiniband) fits several profiles: "
        "a3-highgpu-8g, a3-megagpu-8g; the hardware cannot tell them apart, so pass --gpufabric-instance NAME "
        "(or GPUFABRIC_INSTANCE), or set GPUFABRIC_NODE_INSTANCE_TYPE from the node label "
        "node.kubernetes.io/instance-type"
    )


def test_partial_pod_of_a_p4d_names_the_closest_profile(catalogue: Catalogue) -> None:
    """Seed 000: a pod with 4 of a p4d's 8 A100s and 4 EFA devices."""
    node = NodeFacts((("NVIDIA A100-SXM4-40GB", 40960),) * 4, "NVML", rdma={"efa": 4})
    with pytest.raises(DetectionError) as info:
        detect(catalogue, node)
    message = str(info.value)
    assert "no profile fits this node (4 × NVIDIA A100-SXM4-40GB (40.0 GiB), 4 efa" in message
    assert "p4d.24xlarge expects 8 GPUs, this node shows 4" in message
    assert "Standard_ND96asr_v4 expects 8 GPUs, this node shows 4, 8 ib devices" in message


def test_node_label_wins_and_names_where_it_was_read(
    catalogue: Catalogue, h200_node: NodeFacts, tmp_path: Path
) -> None:
    # The label value exactly as seed 000's pod spec selects its node.
    value = re.search(rf"{re.escape(LABEL)}: (\S+)", SEED.read_text())
    assert value is not None
    assert value[1] == "p4d.24xlarge"
    labels = tmp_path / "labels"
    labels.write_text(f'app="llama"\n{LABEL}="{value[1]}"\nzone="us-east-1a"\n')
    label = read_label({"GPUFABRIC_PODINFO_LABELS": str(labels)})
    assert label == ("p4d.24xlarge", f"label {LABEL} in {labels}")
    node = NodeFacts(h200_node.gpus, "test", label=label)
    found = detect(catalogue, node)
    assert (found.profile.name, found.how) == (
        "p4d.24xlarge",
        f"auto: {LABEL}=p4d.24xlarge (label {LABEL} in {labels})",
    )
    env = read_label(
        {"GPUFABRIC_NODE_INSTANCE_TYPE": "p5.48xlarge", "GPUFABRIC_PODINFO_LABELS": str(labels)}
    )
    assert env == ("p5.48xlarge", "environment variable GPUFABRIC_NODE_INSTANCE_TYPE")
    # A labels file the operator named must exist and be a labels file: one line each.
    with pytest.raises(ProbeError) as missing:
        read_label({"GPUFABRIC_PODINFO_LABELS": str(tmp_path / "none")})
    assert str(missing.value) == (
        f"GPUFABRIC_PODINFO_LABELS: {tmp_path / 'none'} (from GPUFABRIC_PODINFO_LABELS): "
        "no such file"
    )
    binary = tmp_path / "binary"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(ProbeError, match=r"not a text labels file"):
        read_label({"GPUFABRIC_PODINFO_LABELS": str(binary)})


def test_label_without_a_profile_is_an_error_not_a_guess(
    catalogue: Catalogue, h200_node: NodeFacts
) -> None:
    node = NodeFacts(h200_node.gpus, "test", label=("p5.4xlarge", "environment variable X"))
    with pytest.raises(
        DetectionError,
        match=r"the node is a 'p5.4xlarge' \(environment variable X\) but no profile has that name",
    ):
        detect(catalogue, node)


def test_dmi_product_name_is_the_aws_instance_type(
    catalogue: Catalogue, h200_node: NodeFacts, tmp_path: Path
) -> None:
    product = tmp_path / "product_name"
    product.write_text("p5e.48xlarge\n")
    dmi = read_dmi_product(product)
    assert dmi == ("p5e.48xlarge", str(product))
    found = detect(catalogue, NodeFacts(h200_node.gpus, "test", dmi_product=dmi))
    assert found.how == f"auto: DMI product name p5e.48xlarge ({product})"
    product.write_text("PowerEdge XE9680\n")  # not an instance type: the fingerprint decides
    node = NodeFacts(h200_node.gpus, "test", dmi_product=read_dmi_product(product))
    assert detect(catalogue, node).profile.name == "hgx-h200-4gpu"


def test_podinfo_labels_format() -> None:
    text = 'a="1"\nb="with \\"quotes\\""\nmalformed\nc=""\n'
    assert parse_podinfo_labels(text) == {"a": "1", "b": 'with "quotes"', "c": ""}


def test_memory_tolerates_nvml_rounding_but_not_another_sku(catalogue: Catalogue) -> None:
    p4d = catalogue.profiles["p4d.24xlarge"]
    driver460 = NodeFacts((("NVIDIA A100-SXM4-40GB", 40536),) * 8, "t", rdma={"efa": 4})
    assert mismatches(p4d, driver460) == []
    wrong = NodeFacts((("NVIDIA A100-SXM4-40GB", 81920),) * 8, "t", rdma={"efa": 4})
    assert mismatches(p4d, wrong) == ["40 GiB per GPU, this node 80.0"]


def test_recorded_rdma_facts_come_from_the_recording(h200_capture: Path) -> None:
    node = recorded_node(h200_capture / "host")
    assert (node.rdma, node.rdma_origin) == (None, "")  # captures hold no sysfs RDMA listing
