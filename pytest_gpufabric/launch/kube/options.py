"""The kubernetes launcher's options, parsed from the raw ``--gpufabric-k8s-*`` settings
(settings.py keeps them raw): every bad value is a SettingError naming the option, the value
and where it came from."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ...settings import MAX_SECONDS, SPECS, Setting, SettingError, Settings

WORKLOADS = ("auto", "jobset", "indexed-job", "pods")
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


@dataclass(frozen=True)
class Toleration:
    key: str
    value: str | None
    effect: str

    def tolerates(self, taint: dict[str, str]) -> bool:
        if taint.get("key") != self.key or self.effect not in ("", taint.get("effect")):
            return False
        return self.value is None or taint.get("value", "") == self.value

    def manifest(self) -> dict[str, str]:
        if self.value is None:
            return {"key": self.key, "operator": "Exists", "effect": self.effect}
        return {"key": self.key, "operator": "Equal", "value": self.value, "effect": self.effect}


@dataclass(frozen=True)
class KubeOptions:
    namespace: str | None
    image: str | None
    nodes: int | None
    node_selector: dict[str, str] | None  # None: the default (the profile's instance type)
    node_names: tuple[str, ...]
    pods_per_node: int
    gpus_per_pod: int | None
    pod_template: Path | None
    service_account: str | None
    priority_class: str | None
    tolerations: tuple[Toleration, ...]
    workload: str
    python: str
    expiry_s: float
    keep: bool
    label_nodes: bool  # fleet verdicts as node labels and annotations
    taint_failed: bool  # bad nodes tainted NoSchedule, the taint lifted when they pass
    idle_only: bool  # a fleet leaves out nodes whose GPUs others' pods use
    sources: dict[str, str]  # option name -> where its value came from

    def where(self, name: str) -> str:
        return f"{SPECS[name].flag} (from {self.sources.get(name, 'default')})"


def _fail(name: str, setting: Setting[str | None], why: str) -> SettingError:
    return SettingError(
        f"{SPECS[name].flag}: invalid value {setting.value!r} from {setting.source}: {why}"
    )


def _count(name: str, setting: Setting[str | None], minimum: int) -> int | None:
    if setting.value is None:
        return None
    try:
        value = int(setting.value)
    except ValueError:
        raise _fail(name, setting, "not an integer") from None
    if value < minimum:
        raise _fail(name, setting, f"must be >= {minimum}")
    return value


def _dns_name(name: str, setting: Setting[str | None]) -> str | None:
    if setting.value is None:
        return None
    value = setting.value.strip()
    if not _DNS_LABEL.match(value) or len(value) > 63:
        raise _fail(name, setting, "must be a DNS label (lower-case letters, digits, '-')")
    return value


def parse_selector(text: str) -> dict[str, str]:
    """``key=value,key2=value2`` (equality only: what a nodeSelector can express)."""
    selector = {}
    for item in text.split(","):
        key, eq, value = item.strip().partition("=")
        if not eq or not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
            raise ValueError(f"{item.strip()!r} is not key=value")
        selector[key] = value
    return selector


def parse_tolerations(text: str) -> tuple[Toleration, ...]:
    found = []
    for item in text.split(","):
        spec, colon, effect = item.strip().rpartition(":")
        if not colon or effect not in EFFECTS:
            raise ValueError(
                f"{item.strip()!r}: want KEY[=VALUE]:EFFECT, EFFECT one of " + ", ".join(EFFECTS)
            )
        key, eq, value = spec.partition("=")
        if not _LABEL_KEY.match(key):
            raise ValueError(f"{key!r} is not a taint key")
        found.append(Toleration(key, value if eq else None, effect))
    return tuple(found)


def parse(settings: Settings) -> KubeOptions:
    raw = settings.k8s
    get = {
        name: raw.get(name, Setting(None, "default")) for name in SPECS if name.startswith("k8s-")
    }
    sources = {name: s.source for name, s in get.items()}

    def text(name: str) -> str | None:
        value = get[name].value
        if value is not None and not value.strip():
            raise _fail(name, get[name], "empty")
        return value.strip() if value is not None else None

    selector = None
    if text("k8s-node-selector") is not None:
        try:
            selector = parse_selector(get["k8s-node-selector"].value or "")
        except ValueError as exc:
            raise _fail("k8s-node-selector", get["k8s-node-selector"], str(exc)) from None
    names: tuple[str, ...] = ()
    if text("k8s-node-names") is not None:
        names = tuple(n.strip() for n in (get["k8s-node-names"].value or "").split(","))
        if not all(names):
            raise _fail("k8s-node-names", get["k8s-node-names"], "an empty node name")
    tolerations: tuple[Toleration, ...] = ()
    if text("k8s-tolerations") is not None:
        try:
            tolerations = parse_tolerations(get["k8s-tolerations"].value or "")
        except ValueError as exc:
            raise _fail("k8s-tolerations", get["k8s-tolerations"], str(exc)) from None
    workload = text("k8s-workload") or "auto"
    if workload not in WORKLOADS:
        raise _fail("k8s-workload", get["k8s-workload"], "one of " + ", ".join(WORKLOADS))
    try:
        expiry = float(get["k8s-expiry"].value or "300")
    except ValueError:
        raise _fail("k8s-expiry", get["k8s-expiry"], "not a number of seconds") from None
    if not 10 <= expiry <= MAX_SECONDS:
        raise _fail("k8s-expiry", get["k8s-expiry"], f"must be 10 to {MAX_SECONDS} seconds")
    switches = {}
    for name in ("k8s-keep", "k8s-label-nodes", "k8s-taint-failed", "k8s-idle-nodes-only"):
        value = (get[name].value or "false").strip().lower()
        if value not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise _fail(name, get[name], "must be true or false")
        switches[name] = value in ("1", "true", "yes", "on")
    nodes = _count("k8s-nodes", get["k8s-nodes"], 1)
    if names and nodes is not None and nodes != len(names):
        raise SettingError(
            f"--gpufabric-k8s-nodes: {nodes} (from {sources['k8s-nodes']}) but "
            f"--gpufabric-k8s-node-names names {len(names)} nodes"
        )
    template = text("k8s-pod-template")
    template_path = Path(template) if template is not None else None
    if template_path is not None and not template_path.is_file():
        raise SettingError(
            f"--gpufabric-k8s-pod-template: {template_path} (from "
            f"{sources['k8s-pod-template']}): no such file"
        )
    return KubeOptions(
        namespace=_dns_name("k8s-namespace", get["k8s-namespace"]),
        image=text("k8s-image"),
        nodes=nodes,
        node_selector=selector,
        node_names=names,
        pods_per_node=_count("k8s-pods-per-node", get["k8s-pods-per-node"], 1) or 1,
        gpus_per_pod=_count("k8s-gpus-per-pod", get["k8s-gpus-per-pod"], 0),
        pod_template=template_path,
        service_account=_dns_name("k8s-service-account", get["k8s-service-account"]),
        priority_class=text("k8s-priority-class"),
        tolerations=tolerations,
        workload=workload,
        python=text("k8s-python") or "python3",
        expiry_s=expiry,
        keep=switches["k8s-keep"],
        label_nodes=switches["k8s-label-nodes"],
        taint_failed=switches["k8s-taint-failed"],
        idle_only=switches["k8s-idle-nodes-only"],
        sources=sources,
    )
