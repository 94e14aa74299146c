"""pytest wiring only: options, hooks and fixtures. The work happens in plain modules
(settings, profiles, inventory, session, launch, recorded, transports, verdicts, report)."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .evidence import recorded
from .evidence.inventory import take_inventory
from .fabric import Fabric
from .judge.host import HOST_CHECKS
from .judge.nccl import CHECKS
from .launch.local import LocalLauncher
from .launch.replay import ReplayLauncher, recorded_inventory, recorded_world
from .profiles.catalogue import Catalogue, describe, load_catalogue
from .profiles.detect import live_node, node_of
from .profiles.model import ProfileError
from .report.output import build_json, header_lines, summary_lines, write_json
from .runs import ISOLATION_RUNS
from .session.session import FabricSession, TestRecord, choose_profile
from .settings import OPTIONS, Setting, SettingError, Settings, resolve

SETTINGS_KEY = pytest.StashKey[Settings]()
SESSION_KEY = pytest.StashKey[FabricSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gpufabric", "GPU interconnect acceptance (pytest-gpufabric)")
    for spec in OPTIONS:
        where = f"Env: {spec.env}. Ini: {spec.ini}."
        group.addoption(
            spec.flag,
            dest=spec.dest,
            metavar=spec.metavar,
            action="append" if spec.multiple else "store",
            default=None,
            help=f"{spec.help}. {where}",
        )
        if spec.multiple:  # ini paths resolve against the ini file's directory
            parser.addini(spec.ini, help=spec.help, type="paths")
        else:
            parser.addini(spec.ini, help=spec.help, type="string")
    # An action like --fixtures, not a setting: no ini or environment equivalent.
    group.addoption(
        "--gpufabric-list",
        dest="gpufabric_list",
        action="store_true",
        help="List the instance profiles (shipped and --gpufabric-thresholds overlays) and "
        "what --gpufabric-instance auto picks on this node, then exit",
    )


def _settings(config: pytest.Config) -> Settings:
    cli = {spec.dest: config.getoption(spec.dest) for spec in OPTIONS}
    ini = {spec.ini: config.getini(spec.ini) for spec in OPTIONS}
    try:
        return resolve(
            cli,
            os.environ,
            ini,
            ini_file=config.inipath,
            cwd=config.invocation_params.dir,
        )
    except SettingError as exc:
        raise pytest.UsageError(str(exc)) from None


def _replay_session(settings: Settings, catalogue: Catalogue, directory: Path) -> FabricSession:
    where = f"--gpufabric-replay: {directory} (from {settings.replay.source})"
    if not directory.is_dir():
        raise SettingError(f"{where}: no such directory")
    run = recorded.load(directory)
    ranks, nodes, backend = recorded_world(run)
    if not ranks and not run.measurements and run.host is None:
        raise SettingError(
            f"{where}: no NCCL debug lines, nccl-tests output, host capture or gpufabric report"
        )
    inventory = recorded_inventory(run)
    launcher = ReplayLauncher(run)
    node = node_of(inventory, run.host)  # the recorded node's facts, never this machine's
    session = FabricSession.build(
        settings, catalogue, inventory, launcher, recorded=(ranks, nodes, backend), node=node
    )
    session.host_before, session.host_now = run.host_before, run.host
    devs = str(run.report_facts.get("rank_shm_devs", ""))
    if devs:
        session.recorded_rank_shm = [
            (r, int(d) if d.isdigit() else None) for r, d in enumerate(devs.split(","))
        ]
    return session


def _build_session(config: pytest.Config) -> FabricSession:
    """Load profiles, look at the node (or the recording), pick the profile; any problem is
    a usage error."""
    if SESSION_KEY in config.stash:
        return config.stash[SESSION_KEY]
    if hasattr(config, "workerinput"):
        raise pytest.UsageError(
            "pytest-gpufabric cannot run under pytest-xdist: concurrent collectives would "
            "contend for the same GPUs (drop -n)"
        )
    settings = config.stash[SETTINGS_KEY]
    try:
        catalogue = load_catalogue(settings.thresholds.value)
    except ProfileError as exc:
        raise pytest.UsageError(*exc.problems) from None
    try:
        if settings.replay.value is not None:
            session = _replay_session(settings, catalogue, settings.replay.value)
        else:
            inventory = take_inventory(os.environ)
            # Label, DMI and sysfs are read only when the profile is to be detected.
            auto = settings.instance.value == "auto"
            node = live_node(os.environ, inventory) if auto else None
            session = FabricSession.build(
                settings, catalogue, inventory, LocalLauncher(), node=node
            )
    except SettingError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(_SessionHooks(session, config), "gpufabric-session")
    return session


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("help") or config.getoption("version"):
        return
    if config.getoption("gpufabric_list"):
        return  # pytest_cmdline_main lists and exits; nothing else may fail first
    settings = _settings(config)
    config.stash[SETTINGS_KEY] = settings
    if settings.explicit:
        # Asked for by name: fail now on a bad profile or node, before any test runs.
        _build_session(config)


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if not config.getoption("gpufabric_list"):
        return None
    # Runs before pytest_configure (no terminal reporter yet) and outside output capture.
    settings = _settings(config)
    try:
        catalogue = load_catalogue(settings.thresholds.value)
    except ProfileError as exc:
        for problem in exc.problems:
            print(f"ERROR: {problem}", file=sys.stderr)
        return int(pytest.ExitCode.USAGE_ERROR)
    for line in describe(catalogue):
        print(line)
    inventory = take_inventory(os.environ)
    try:
        profile, how = choose_profile(
            dataclasses.replace(settings, instance=Setting("auto", "--gpufabric-list")),
            catalogue,
            inventory,
            live_node(os.environ, inventory),
        )
    except SettingError as exc:
        print(f"on this node: {exc}")
    else:
        print(f"on this node: {profile.name if profile else 'no profile'} [{how}]")
    return 0


def pytest_report_header(config: pytest.Config) -> list[str]:
    if SESSION_KEY not in config.stash:
        return []
    return header_lines(config.stash[SESSION_KEY])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "gpufabric_bandwidth_case" in metafunc.fixturenames:
        session = _build_session(metafunc.config)
        cases = session.bandwidth_cases()
        metafunc.parametrize("gpufabric_bandwidth_case", cases, ids=[c.id for c in cases])
    if "gpufabric_correctness_case" in metafunc.fixturenames:
        session = _build_session(metafunc.config)
        checks = session.correctness_cases()
        metafunc.parametrize("gpufabric_correctness_case", checks, ids=[c.id for c in checks])
    if "gpufabric_nccl_check" in metafunc.fixturenames:
        metafunc.parametrize("gpufabric_nccl_check", list(CHECKS))
    if "gpufabric_host_check" in metafunc.fixturenames:
        metafunc.parametrize("gpufabric_host_check", list(HOST_CHECKS))
    if "gpufabric_isolation_run" in metafunc.fixturenames:
        metafunc.parametrize("gpufabric_isolation_run", list(ISOLATION_RUNS))
    if "gpufabric_isolation_case" in metafunc.fixturenames:
        session = _build_session(metafunc.config)
        cases = session.isolation_cases()
        metafunc.parametrize("gpufabric_isolation_case", cases, ids=[c.id for c in cases])


# Suites run node checks first (they start the rank pool), then correctness, bandwidth, the
# NCCL evidence checks when the collectives have made NCCL connect everything, the host
# checks (NVLink counters compared after the main run's traffic), and the isolation runs
# last, each run's path check before its bandwidth so that every pool starts once.
_ORDER = {
    "gpufabric_correctness_case": 1,
    "gpufabric_bandwidth_case": 2,
    "gpufabric_nccl_check": 3,
    "gpufabric_host_check": 4,
    "gpufabric_isolation_run": 5,
    "gpufabric_isolation_case": 5,
}


def _order(item: pytest.Item) -> tuple[int, int, int]:
    names = getattr(item, "fixturenames", ())
    stage = max((_ORDER.get(name, 0) for name in names), default=0)
    params = getattr(getattr(item, "callspec", None), "params", {})
    run = params.get("gpufabric_isolation_run")
    case = params.get("gpufabric_isolation_case")
    if case is not None:
        run = case.run
    position = ISOLATION_RUNS.index(run) if run in ISOLATION_RUNS else 0
    return stage, position, int(case is not None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_order)  # stable: every other order is kept


class _SessionHooks:
    """Hooks that only exist while a gpufabric session does."""

    def __init__(self, session: FabricSession, config: pytest.Config) -> None:
        self.session = session
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and not report.passed):
            message = ""
            if report.skipped and isinstance(report.longrepr, tuple):
                message = str(report.longrepr[2])
            elif report.failed:
                message = report.longreprtext
            self.session.records.append(
                TestRecord(
                    report.nodeid,
                    report.outcome,
                    report.duration,
                    dict(report.user_properties),
                    message,
                )
            )

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        lines = summary_lines(self.session)
        if lines:
            terminalreporter.write_sep("-", "gpufabric")
            for line in lines:
                terminalreporter.write_line(line)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.session.close()
        data = build_json(self.session, int(exitstatus))
        path = self.session.settings.json.value
        if path is not None:
            write_json(path, data)
        artifacts = self.session.artifacts
        if artifacts is not None and artifacts.is_dir() and self.session.replay_of is None:
            write_json(artifacts / "report.json", data)  # the bundle replays on its own

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # Also reached after Ctrl-C and internal errors: no rank may outlive pytest.
        self.session.close()


@pytest.fixture(scope="session")
def gpufabric_session(
    request: pytest.FixtureRequest,
    record_testsuite_property: Callable[[str, object], None],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FabricSession]:
    """The run's FabricSession (profile, node inventory, rank pools)."""
    session = _build_session(request.config)
    yield session
    session.close()
    for name, value in session.facts().items():
        record_testsuite_property(name, value)


@pytest.fixture
def gpufabric(
    gpufabric_session: FabricSession,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Fabric:
    """Checks for suite tests: ``gpufabric.check_busbw(case)`` and friends (see checks.Fabric)."""
    return Fabric(
        gpufabric_session,
        request.node,
        lambda: Path(tmp_path_factory.mktemp("gpufabric-artifacts", numbered=True)),
    )
