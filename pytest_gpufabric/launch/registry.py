"""The built-in launchers by name, imported only when chosen."""

from __future__ import annotations

from ..evidence import recorded
from ..settings import SettingError, Settings
from .local import LocalLauncher
from .protocol import Launcher
from .replay import ReplayLauncher

BUILTIN = ("local", "replay", "kubernetes")


def builtin(name: str, settings: Settings) -> Launcher | None:
    """The built-in launcher called ``name``, or None; SettingError when it cannot start."""
    if name == "local":
        return LocalLauncher()
    if name == "replay":
        return _replay(settings)
    if name == "kubernetes":
        return _kubernetes(settings)
    return None


def _kubernetes(settings: Settings) -> Launcher:
    from ..profiles.catalogue import load_catalogue
    from .kube.launcher import KubernetesLauncher

    # The pods are shaped by the profile (GPUs, EFA devices, /dev/shm) before any node is
    # read, so a named profile is looked up here; "auto" shapes them from the options alone.
    profile = None
    if settings.instance.value != "auto":
        profile = load_catalogue(settings.thresholds.value).get(settings.instance.value)
    return KubernetesLauncher(settings, profile)


def _replay(settings: Settings) -> ReplayLauncher:
    directory = settings.replay.value
    where = f"--gpufabric-replay: {directory} (from {settings.replay.source})"
    if directory is None or not directory.is_dir():
        raise SettingError(f"{where}: no such directory")
    try:
        run = recorded.load(directory)
    except recorded.RecordingError as exc:
        raise SettingError(f"--gpufabric-replay: {exc}") from None
    if (not run.nccl_files and not run.measurements and run.host is None and not run.nodes
            and not run.reports):  # fmt: skip
        raise SettingError(
            f"{where}: no NCCL debug lines, nccl-tests output, host capture or gpufabric report"
        )
    return ReplayLauncher(run)
