"""The plugin's options and their precedence: command line > ``GPUFABRIC_*`` environment
variable > ini file > default. Resolved once into a frozen :class:`Settings`; every value
remembers where it came from so that errors and reports can name it.

Pure module: the pytest wiring in plugin.py feeds it raw strings.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


MAX_SECONDS = 7 * 24 * 3600  # beyond this, torch's and gloo's millisecond timeouts overflow


class SettingError(ValueError):
    """A bad option value; the message names the option, the value and its source."""


@dataclass(frozen=True)
class OptionSpec:
    name: str
    metavar: str
    help: str
    default: str | None = None
    multiple: bool = False  # --gpufabric-thresholds may repeat; env uses os.pathsep
    switch: bool = False  # a flag without a value; env and ini take true/false

    @property
    def flag(self) -> str:
        return f"--gpufabric-{self.name}"

    @property
    def dest(self) -> str:
        return f"gpufabric_{self.name.replace('-', '_')}"

    @property
    def env(self) -> str:
        return f"GPUFABRIC_{self.name.upper().replace('-', '_')}"

    @property
    def ini(self) -> str:
        return self.dest


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "instance",
        "NAME|auto",
        "Instance profile to judge this node against (a file in thresholds/), or 'auto' to "
        "pick it from the GPUs found. Default: auto",
        default="auto",
    ),
    OptionSpec(
        "nprocs",
        "N",
        "Ranks to launch on this node. Default: one per visible GPU, 2 on a machine without GPUs",
    ),
    OptionSpec(
        "emulate-nodes",
        "N",
        "Split this host's ranks into N NCCL nodes with NCCL_HOSTID, to exercise multi-node "
        "paths on one host (traffic between them goes over the network NCCL picks; the "
        "profile's bandwidth.inter_node floors apply). Default: 1",
        default="1",
    ),
    OptionSpec(
        "timeout",
        "SECONDS",
        "Deadline for each collective job once the ranks run; a rank that misses it fails the "
        "test. Default: 120",
        default="120",
    ),
    OptionSpec(
        "startup-timeout",
        "SECONDS",
        "Deadline for starting a rank pool: processes or pods starting, import torch, "
        "rendezvous and NCCL initialisation. Default: 600",
        default="600",
    ),
    OptionSpec(
        "prestart",
        "auto|on|off",
        "Start the next rank pool's processes (spawn, import torch; no GPU touched until its "
        "turn) while the current pool measures, so that the gate waits less for pool starts. "
        "auto: on for NCCL runs, off for gloo on CPU (a few cores are better left to the "
        "measuring ranks). Launchers that cannot start ahead ignore it. Default: auto",
        default="auto",
    ),
    OptionSpec(
        "launcher",
        "NAME",
        "Where the ranks run: local (processes on this machine), replay (set by "
        "--gpufabric-replay), or a launcher another plugin provides through the "
        "pytest_gpufabric_make_launcher hook. Default: local",
        default="local",
    ),
    OptionSpec(
        "allow-uncertified",
        "",
        "Exit 0 when every test passed although the run is NOT CERTIFIED (no profile, or "
        "checks the profile asks for were not judged): for smoke runs of the machinery. "
        "Default: false",
        default="false",
        switch=True,
    ),
    OptionSpec(
        "fleet",
        "",
        "Fleet mode (suites/test_fleet.py, docs/fleet.md): each of the launcher's nodes "
        "gated alone, then pairs of nodes until the bad nodes and links are named; the "
        "kubernetes launcher's usable nodes, or --gpufabric-emulate-nodes on one host. "
        "Default: false",
        default="false",
        switch=True,
    ),
    OptionSpec(
        "artifacts",
        "DIR",
        "Keep per-rank NCCL debug logs, rank output and results here. Default: a directory "
        "under pytest's basetemp",
    ),
    OptionSpec("json", "PATH", "Write the run's facts and every test's measurements as JSON"),
    OptionSpec(
        "metrics",
        "PATH",
        "Write the verdict and measurements in Prometheus text format (a .prom file for "
        "node-exporter's textfile collector, replaced atomically)",
    ),
    OptionSpec(
        "layout",
        "TPxPPxDP[,...]",
        "Parallel layouts for suites/test_workload.py (tensor × pipeline × data parallel, "
        "Megatron's rank order), e.g. 2x4x1. Default: the layouts the profile has workload floors "
        "for, else the seeds' layouts that fit the ranks",
    ),
    OptionSpec(
        "html",
        "PATH",
        "Write a self-contained HTML report (charts of busbw and latency against floors, "
        "the transport matrix, host facts, a fleet's nodes and pairs; opens without network)",
    ),
    OptionSpec(
        "pushgateway",
        "URL",
        "Push the same metrics to this Prometheus Pushgateway (http://host:9091) at the end, "
        "grouped by job gpufabric and the profile (gpufabric_profile), so that each run "
        "replaces the last one of its instance type",
    ),
    OptionSpec(
        "replay",
        "DIR",
        "Judge a recorded run instead of launching ranks: NCCL debug logs, nccl-tests output "
        "(and its -J JSON), or a --gpufabric-artifacts bundle; files are recognised by content",
    ),
    OptionSpec(
        "podspec",
        "FILE",
        "A training pod spec (Pod, Job, JobSet, Deployment, kubectl get -o yaml) to lint "
        "against the run's profile (suites/test_podspec.py). Default: the kubernetes "
        "launcher's --gpufabric-k8s-pod-template",
    ),
    OptionSpec(
        "thresholds",
        "PATH",
        "Extra profile file or directory; a profile here replaces the shipped one of the same "
        "name. May be given several times",
        multiple=True,
    ),
)

# The kubernetes launcher's options (launch/kube/options.py parses them): same prefix,
# precedence and sources as every option; kept raw here so that this module stays small.
K8S_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "k8s-namespace",
        "NAME",
        "Namespace of the run's pods (kubernetes launcher). Default: the kubeconfig context's, "
        "or the pod's own inside a cluster, else 'default'",
    ),
    OptionSpec(
        "k8s-image",
        "IMAGE",
        "Image of the rank pods: it must hold torch and pytest-gpufabric (see Dockerfile). "
        "Default: the pod template's, else required",
    ),
    OptionSpec(
        "k8s-nodes",
        "N",
        "How many nodes to run on (among those that match the selector). Default: 1, or as "
        "many as --gpufabric-k8s-node-names names",
    ),
    OptionSpec(
        "k8s-node-selector",
        "KEY=VALUE,...",
        "Label selector of the candidate nodes. Default: node.kubernetes.io/instance-type="
        "<the profile's name> when --gpufabric-instance names one",
    ),
    OptionSpec("k8s-node-names", "NAME,...", "Run on exactly these nodes"),
    OptionSpec(
        "k8s-pods-per-node",
        "N",
        "Rank pods per node; more than 1 splits a node as jobs with one GPU per pod do. Default: 1",
        default="1",
    ),
    OptionSpec(
        "k8s-gpus-per-pod",
        "N",
        "nvidia.com/gpu per pod, one rank per GPU. Default: the profile's GPUs divided by the "
        "pods per node; 0 on a CPU profile (one gloo rank per pod)",
    ),
    OptionSpec(
        "k8s-pod-template",
        "FILE",
        "A Pod, PodTemplate, Job or JobSet manifest whose pod spec is merged under ours (your "
        "image, env such as NCCL_*, volumes, tolerations, sidecars)",
    ),
    OptionSpec("k8s-service-account", "NAME", "Service account of the rank pods"),
    OptionSpec("k8s-priority-class", "NAME", "Priority class of the rank pods"),
    OptionSpec(
        "k8s-tolerations",
        "KEY[=VALUE]:EFFECT,...",
        "Extra tolerations of the rank pods (nvidia.com/gpu and vpc.amazonaws.com/efa taints "
        "are tolerated already)",
    ),
    OptionSpec(
        "k8s-workload",
        "auto|jobset|indexed-job|pods",
        "The object that owns the rank pods: a JobSet when its CRD is installed, else an "
        "Indexed Job with a headless Service (Kubernetes >= 1.21), else plain pods with a "
        "headless Service. Default: auto",
        default="auto",
    ),
    OptionSpec(
        "k8s-python",
        "COMMAND",
        "The Python interpreter in the image that has torch and pytest-gpufabric. Default: python3",
        default="python3",
    ),
    OptionSpec(
        "k8s-expiry",
        "SECONDS",
        "If this controller dies without cleaning up (SIGKILL, lost node), Kubernetes deletes "
        "the run's objects this long after its last renewal. Default: 300",
        default="300",
    ),
    OptionSpec(
        "k8s-keep",
        "",
        "Keep the run's pods and objects after the run, for debugging (they still expire). "
        "Default: false",
        default="false",
        switch=True,
    ),
    OptionSpec(
        "k8s-idle-nodes-only",
        "",
        "Fleet mode: leave out nodes where a pod of someone else that uses GPUs (requests "
        "nvidia.com/gpu) is running, saying which; needs RBAC to list pods in all namespaces "
        "(deploy/rbac-fleet.yaml). Default: false",
        default="false",
        switch=True,
    ),
    OptionSpec(
        "k8s-label-nodes",
        "",
        "Fleet mode: label each node with its verdict (gpufabric.dev/verdict: passed, bad, "
        "undecided) and annotate it with the time and reason (needs RBAC to patch nodes: "
        "deploy/rbac-nodes.yaml). Default: false; nothing is changed on nodes unless asked",
        default="false",
        switch=True,
    ),
    OptionSpec(
        "k8s-taint-failed",
        "",
        "Fleet mode: taint each bad node gpufabric.dev/bad=fleet:NoSchedule (running pods "
        "stay; the node is not cordoned) and remove that taint from nodes that pass again "
        "(the rank pods tolerate it, so tainted nodes are tested again). Default: false",
        default="false",
        switch=True,
    ),
)
OPTIONS = OPTIONS + K8S_OPTIONS
SPECS = {spec.name: spec for spec in OPTIONS}


@dataclass(frozen=True)
class Setting(Generic[T]):
    value: T
    source: (
        str  # e.g. "--gpufabric-timeout", "GPUFABRIC_TIMEOUT", "ini gpufabric_timeout", "default"
    )


@dataclass(frozen=True)
class Settings:
    instance: Setting[str]
    nprocs: Setting[int | None]
    emulate_nodes: Setting[int]
    timeout: Setting[float]
    startup_timeout: Setting[float]
    launcher: Setting[str]
    allow_uncertified: Setting[bool]
    artifacts: Setting[Path | None]
    json: Setting[Path | None]
    thresholds: Setting[tuple[Path, ...]]
    replay: Setting[Path | None]
    podspec: Setting[Path | None] = Setting(None, "default")
    prestart: Setting[str] = Setting("auto", "default")
    fleet: Setting[bool] = Setting(False, "default")
    metrics: Setting[Path | None] = Setting(None, "default")
    pushgateway: Setting[str | None] = Setting(None, "default")
    html: Setting[Path | None] = Setting(None, "default")
    layout: Setting[str | None] = Setting(None, "default")
    # The kubernetes launcher's options by name ("k8s-image"), raw; paths made absolute.
    k8s: Mapping[str, Setting[str | None]] = dataclasses.field(default_factory=dict)

    @property
    def explicit(self) -> bool:
        """True when the user set any gpufabric option anywhere: the run is a gpufabric run,
        and a bad option, profile or node is a usage error before any test runs."""
        fields = [getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "k8s"]
        return any(s.source != "default" for s in [*fields, *self.k8s.values()])


@dataclass(frozen=True)
class RawValue:
    text: str
    source: str
    base: Path  # relative paths resolve against this directory


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError("not an integer") from None
    if value < 1:
        raise ValueError("must be >= 1")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a number of seconds > 0")
    if value > MAX_SECONDS:
        raise ValueError(f"must be at most {MAX_SECONDS} s (7 days)")
    return value


def _switch(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false (1/0, yes/no)")


def _name(text: str) -> str:
    text = text.strip()
    if not text or not all(c.isalnum() or c in "-_." for c in text):
        raise ValueError("must be a name (letters, digits, - _ .)")
    return text


def _prestart(text: str) -> str:
    value = text.strip().lower()
    if value not in ("auto", "on", "off"):
        raise ValueError("must be auto, on or off")
    return value


def _instance(text: str) -> str:
    text = text.strip()
    if not text or any(c in text for c in "/\\ "):
        raise ValueError("must be a profile name or 'auto'")
    return text


def _pick(
    spec: OptionSpec,
    cli: Mapping[str, str | bool | Sequence[str] | None],
    env: Mapping[str, str],
    ini: Mapping[str, str | Sequence[str] | None],
    ini_file: Path | None,
    cwd: Path,
) -> list[RawValue]:
    """The raw value(s) of the highest-precedence source that sets ``spec``."""
    raw_cli = cli.get(spec.dest)
    if spec.switch and raw_cli:
        return [RawValue("true", spec.flag, cwd)]
    if raw_cli is not None and not isinstance(raw_cli, bool) and raw_cli != []:
        # An empty string given on the command line is a value (and an error), not unset.
        items = [raw_cli] if isinstance(raw_cli, str) else list(raw_cli)
        return [RawValue(str(i), spec.flag, cwd) for i in items]
    raw_env = env.get(spec.env)
    if raw_env:
        items = raw_env.split(os.pathsep) if spec.multiple else [raw_env]
        return [RawValue(i, f"environment variable {spec.env}", cwd) for i in items]
    raw_ini = ini.get(spec.ini)
    if raw_ini not in (None, [], ""):
        base = ini_file.parent if ini_file else cwd
        where = f"ini option {spec.ini}" + (f" in {ini_file}" if ini_file else "")
        items = [raw_ini] if isinstance(raw_ini, str) else list(raw_ini or [])
        if spec.multiple and isinstance(raw_ini, str):
            items = raw_ini.split()
        return [RawValue(str(i), where, base) for i in items]
    if spec.default is not None:
        return [RawValue(spec.default, "default", cwd)]
    return []


def _convert(spec: OptionSpec, raw: RawValue, parse: Callable[[str], T]) -> T:
    try:
        return parse(raw.text)
    except ValueError as exc:
        raise SettingError(
            f"{spec.flag}: invalid value {raw.text!r} from {raw.source}: {exc}"
        ) from None


def resolve(
    cli: Mapping[str, str | bool | Sequence[str] | None],
    env: Mapping[str, str],
    ini: Mapping[str, str | Sequence[str] | None],
    *,
    ini_file: Path | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Resolve every option; raise :class:`SettingError` on the first bad value."""
    here = cwd or Path.cwd()

    def one(name: str, parse: Callable[[str], T]) -> Setting[T | None]:
        spec = SPECS[name]
        raws = _pick(spec, cli, env, ini, ini_file, here)
        if not raws:
            return Setting(None, "default")
        return Setting(_convert(spec, raws[0], parse), raws[0].source)

    def defaulted(name: str, parse: Callable[[str], T]) -> Setting[T]:
        spec = SPECS[name]
        raw = _pick(spec, cli, env, ini, ini_file, here)[0]  # the spec's default is the last resort
        return Setting(_convert(spec, raw, parse), raw.source)

    def path(name: str) -> Setting[Path | None]:
        spec = SPECS[name]
        raws = _pick(spec, cli, env, ini, ini_file, here)
        if not raws:
            return Setting(None, "default")
        if not raws[0].text.strip():
            raise SettingError(f"{spec.flag}: empty value from {raws[0].source}: give a path")
        return Setting((raws[0].base / raws[0].text).resolve(), raws[0].source)

    spec = SPECS["thresholds"]
    extra = _pick(spec, cli, env, ini, ini_file, here)
    for raw in extra:
        if not raw.text.strip():
            raise SettingError(f"{spec.flag}: an empty path from {raw.source}")
    thresholds = Setting(
        tuple((r.base / r.text).resolve() for r in extra),
        extra[0].source if extra else "default",
    )
    replay = path("replay")
    launcher = defaulted("launcher", _name)
    nprocs = one("nprocs", _positive_int)
    emulate_nodes = defaulted("emulate-nodes", _positive_int)
    if replay.value is not None:
        for name, setting in (("nprocs", nprocs), ("emulate-nodes", emulate_nodes)):
            if setting.source != "default":
                raise SettingError(
                    f"--gpufabric-{name}: {setting.value} (from {setting.source}) has no effect on "
                    f"a replay: the recording (--gpufabric-replay, from {replay.source}) says how "
                    "many ranks and nodes it had"
                )
        if launcher.source != "default" and launcher.value != "replay":
            raise SettingError(
                f"--gpufabric-launcher: {launcher.value!r} (from {launcher.source}) cannot judge "
                f"a recording; --gpufabric-replay (from {replay.source}) uses the replay launcher"
            )
        launcher = Setting("replay", replay.source)
    elif launcher.value == "replay":
        raise SettingError(
            f"--gpufabric-launcher: replay (from {launcher.source}) needs --gpufabric-replay DIR"
        )
    k8s: dict[str, Setting[str | None]] = {}
    for spec in K8S_OPTIONS:
        raws = _pick(spec, cli, env, ini, ini_file, here)
        if not raws:
            k8s[spec.name] = Setting(None, "default")
            continue
        text = raws[0].text
        if spec.name == "k8s-pod-template" and text.strip():
            text = str((raws[0].base / text).resolve())
        k8s[spec.name] = Setting(text, raws[0].source)
    return Settings(
        k8s=k8s,
        instance=defaulted("instance", _instance),
        nprocs=nprocs,
        emulate_nodes=emulate_nodes,
        timeout=defaulted("timeout", _positive_seconds),
        startup_timeout=defaulted("startup-timeout", _positive_seconds),
        launcher=launcher,
        allow_uncertified=defaulted("allow-uncertified", _switch),
        artifacts=path("artifacts"),
        json=path("json"),
        thresholds=thresholds,
        replay=replay,
        podspec=path("podspec"),
        prestart=defaulted("prestart", _prestart),
        fleet=defaulted("fleet", _switch),
        metrics=path("metrics"),
        pushgateway=one("pushgateway", _url),
        html=path("html"),
        layout=one("layout", str),
    )


def _url(text: str) -> str:
    if not text.strip().startswith(("http://", "https://")):
        raise ValueError("not an http:// or https:// URL")
    return text.strip()


def check_paths(settings: Settings) -> None:
    """The paths a run will read or write, checked before any test runs: a bad one is a
    SettingError naming the option, its source and the problem."""
    for overlay in settings.thresholds.value:
        where = f"--gpufabric-thresholds: {overlay} (from {settings.thresholds.source})"
        if not overlay.exists():
            raise SettingError(f"{where}: no such file or directory")
        if overlay.is_dir() and not any(p.suffix in (".yaml", ".yml") for p in overlay.iterdir()):
            raise SettingError(f"{where}: no profile (*.yaml file) in this directory")
        if not overlay.is_dir() and not overlay.is_file():
            raise SettingError(f"{where}: not a regular file or a directory")
    podspec = settings.podspec
    if podspec.value is not None and not podspec.value.is_file():
        problem = "not a regular file" if podspec.value.exists() else "no such file"
        raise SettingError(
            f"--gpufabric-podspec: {podspec.value} (from {podspec.source}): {problem}"
        )
    replay = settings.replay
    if replay.value is not None and not replay.value.is_dir():
        problem = "not a directory" if replay.value.exists() else "no such directory"
        raise SettingError(f"--gpufabric-replay: {replay.value} (from {replay.source}): {problem}")
    artifacts = settings.artifacts
    if artifacts.value is not None:
        where = f"--gpufabric-artifacts: {artifacts.value} (from {artifacts.source})"
        if artifacts.value.exists() and not artifacts.value.is_dir():
            raise SettingError(f"{where}: exists and is not a directory")
        _writable_dir(artifacts.value, where)
    for option, json_path in (
        ("json", settings.json),
        ("metrics", settings.metrics),
        ("html", settings.html),
    ):
        _check_output(option, json_path)


def _check_output(option: str, json_path: Setting[Path | None]) -> None:
    """A file the run writes at its end (written beside, then renamed over)."""
    if json_path.value is not None:
        where = f"--gpufabric-{option}: {json_path.value} (from {json_path.source})"
        if json_path.value.is_dir():
            raise SettingError(f"{where}: is a directory; give a file name")
        if json_path.value.exists() and not json_path.value.is_file():
            # The report is written beside and renamed over: a device or FIFO would be replaced.
            raise SettingError(f"{where}: exists and is not a regular file")
        _writable_dir(json_path.value.parent, where)
        if json_path.value.exists() and not os.access(json_path.value, os.W_OK):
            raise SettingError(f"{where}: the file exists and is not writable")


def _writable_dir(directory: Path, where: str) -> None:
    """``directory`` exists (it is made if missing) and a file can be created in it; tried
    for real, since permission bits do not tell (root, read-only mounts, /proc)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise SettingError(f"{where}: cannot write there: {exc.strerror or exc}") from None
