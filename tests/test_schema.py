"""thresholds/profile.schema.json: valid JSON Schema, accepts every shipped profile, rejects the
structurally broken ones, and names exactly the keys the loader accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pytest_gpufabric.collectives import Collective
from pytest_gpufabric.profiles import keys as profiles
from pytest_gpufabric.profiles.catalogue import schema_path, shipped_profile_dir

BROKEN = Path(__file__).parent / "data" / "profiles" / "broken"
# Problems only the loader can see: file names, YAML syntax and duplicate keys (a YAML parser
# keeps the last), sources across extends, rank counts against floors, unknown parents.
LOADER_ONLY = {
    "yaml-syntax.yaml", "duplicate-key.yaml", "name-mismatch.yaml", "no-source.yaml",
    "one-rank-floors.yaml", "extends-unknown.yaml", "override-without-source.yaml",
    "inter-node-without-nodes.yaml",
}  # fmt: skip


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(schema_path().read_text())
    jsonschema.Draft202012Validator.check_schema(data)
    return data


def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", sorted(shipped_profile_dir().glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_profiles_validate(schema: dict[str, Any], path: Path) -> None:
    errors = [e.message for e in validator(schema).iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []


@pytest.mark.parametrize(
    "path", sorted(p for p in BROKEN.iterdir() if p.name not in LOADER_ONLY), ids=lambda p: p.name
)
def test_broken_profiles_fail_the_schema_too(schema: dict[str, Any], path: Path) -> None:
    assert list(validator(schema).iter_errors(yaml.safe_load(path.read_text())))


def _keys(node: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    for option in node.get("oneOf", []):
        if option.get("type") == "object":
            node = option
    return set(node.get("properties", {}))


def test_schema_keys_are_the_loaders_keys(schema: dict[str, Any]) -> None:
    top = schema["properties"]
    assert set(top) == set(profiles.TOP_KEYS)
    assert _keys(top["gpu"], schema) == set(profiles.GPU_KEYS)
    bandwidth = top["bandwidth"]["properties"]
    assert set(bandwidth) == set(profiles.BANDWIDTH_KEYS)
    for kind, keys in profiles.RUN_KEYS.items():
        assert _keys(bandwidth[kind], schema) == set(keys), kind
    assert _keys(bandwidth["split"], schema) == set(profiles.SPLIT_KEYS)
    entry = next(o for o in schema["$defs"]["floorEntry"]["oneOf"] if o.get("type") == "object")
    assert set(entry["properties"]) == set(profiles.FLOOR_KEYS)
    collectives = set(schema["$defs"]["floors"]["properties"])
    assert collectives == {c.value for c in Collective}
    nccl = top["nccl"]["properties"]
    assert set(nccl) == set(profiles.NCCL_KEYS)
    assert set(nccl["intra_node"]["properties"]) == {"source", *profiles.NCCL_INTRA_KEYS}
    assert set(nccl["network"]["properties"]) == {"source", *profiles.NCCL_NETWORK_KEYS}
    host = top["host"]["properties"]
    assert set(host) == set(profiles.HOST_KEYS)
    for part, keys in profiles.HOST_PARTS.items():
        assert set(host[part]["properties"]) == {"source", *keys}, part
    protected = schema["$defs"]["networkOnly"]["oneOf"][0]["properties"]["env"]["propertyNames"]
    assert set(protected["not"]["enum"]) == set(profiles.PROTECTED_ENV)


def test_schema_ships_inside_the_package_data() -> None:
    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    assert '"pytest_gpufabric.thresholds" = ["*.yaml", "*.json"]' in pyproject
    assert schema_path().parent == shipped_profile_dir()


def test_schema_workload_keys_are_the_loaders(schema: dict[str, Any]) -> None:
    workload = schema["properties"]["workload"]
    assert set(workload["properties"]) == set(profiles.WORKLOAD_KEYS)
    kinds = workload["properties"]["layouts"]["additionalProperties"]["properties"]
    assert set(kinds) == set(profiles.GROUP_KINDS)
