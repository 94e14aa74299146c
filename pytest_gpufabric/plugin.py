"""pytest wiring only: options, hooks and fixtures. The work happens in plain modules
(settings, session/, launch/, judge/, report/); docs/architecture.md shows how they fit."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path

import pytest

from . import hookspecs
from .fabric import Fabric
from .judge.catalog import CHECKS, HOST_CHECKS
from .judge.certify import Certification
from .launch import registry
from .launch.protocol import Launcher
from .profiles.catalogue import describe, load_catalogue
from .profiles.model import ProfileError
from .report.html.extras import busbw_svg
from .report.json_report import write_reports
from .report.terminal import header_lines, summary_lines
from .runs import DEFAULT, ISOLATION_RUNS, SPLIT
from .session.cases import SPLIT_COLLECTIVES
from .session.records import TestRecord
from .session.session import FabricSession
from .session.world import choose_profile
from .settings import OPTIONS, Setting, SettingError, Settings, check_paths, resolve

SETTINGS_KEY = pytest.StashKey[Settings]()
SESSION_KEY = pytest.StashKey[FabricSession]()
HOOKS_KEY: pytest.StashKey[_SessionHooks] = pytest.StashKey()
LAZY_ERROR_KEY = pytest.StashKey[str]()
CASE_FIXTURES = (
    "gpufabric_correctness_case", "gpufabric_bandwidth_case", "gpufabric_nccl_check",
    "gpufabric_host_check", "gpufabric_isolation_run", "gpufabric_isolation_case",
    "gpufabric_latency_case", "gpufabric_split_collective", "gpufabric_fleet_node",
    "gpufabric_workload_case",
)  # fmt: skip
FIXTURES = ("gpufabric", "gpufabric_session", *CASE_FIXTURES)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gpufabric", "GPU interconnect acceptance (pytest-gpufabric)")
    for spec in OPTIONS:
        where = f"Env: {spec.env}. Ini: {spec.ini}."
        if spec.switch:
            group.addoption(spec.flag, dest=spec.dest, action="store_true", default=None,
                            help=f"{spec.help}. {where}")  # fmt: skip
        else:
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
        return resolve(cli, os.environ, ini, ini_file=config.inipath,
                       cwd=config.invocation_params.dir)  # fmt: skip
    except SettingError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(trylast=True)
def pytest_gpufabric_make_launcher(config: pytest.Config, name: str) -> Launcher | None:
    return registry.builtin(name, config.stash[SETTINGS_KEY])


def _build_session(config: pytest.Config) -> FabricSession:
    """Load the profiles, let the launcher read its nodes, choose the profile: any problem
    is a one-line usage error."""
    if SESSION_KEY in config.stash:
        return config.stash[SESSION_KEY]
    if hasattr(config, "workerinput"):
        raise pytest.UsageError(_XDIST_REFUSAL)
    settings = config.stash[SETTINGS_KEY]
    try:
        check_paths(settings)
        catalogue = load_catalogue(settings.thresholds.value)
        name = settings.launcher.value
        launcher = config.hook.pytest_gpufabric_make_launcher(config=config, name=name)
        if launcher is None:
            known = ", ".join(registry.BUILTIN)
            raise SettingError(
                f"--gpufabric-launcher: unknown launcher {name!r} (from "
                f"{settings.launcher.source}); known: {known}, or one that a plugin adds "
                "through the pytest_gpufabric_make_launcher hook"
            )
        try:
            session = FabricSession.build(settings, catalogue, launcher)
        except BaseException:
            launcher.close()  # it may already hold processes or pods
            raise
    except ProfileError as exc:
        raise pytest.UsageError(*exc.problems) from None
    except (SettingError, ValueError) as exc:  # ProbeError, RecordingError are ValueErrors
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION_KEY] = session
    hooks = _SessionHooks(session, config)
    config.stash[HOOKS_KEY] = hooks
    config.pluginmanager.register(hooks, "gpufabric-session")
    return session


_XDIST_REFUSAL = (
    "pytest-gpufabric cannot run under pytest-xdist (-n): concurrent collectives would "
    "contend for the same GPUs; drop -n (many nodes: --gpufabric-fleet gates them in "
    "parallel itself)"
)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gpufabric_last: run after every other gpufabric test (fleet mode stops the "
        "main pool to probe the nodes)"
    )  # fmt: skip
    if config.getoption("help") or config.getoption("version"):
        return
    if config.getoption("gpufabric_list"):
        return  # pytest_cmdline_main lists and exits; nothing else may fail first
    settings = _settings(config)
    config.stash[SETTINGS_KEY] = settings
    xdist = not hasattr(config, "workerinput") and config.getoption("numprocesses", None)
    if xdist and (settings.explicit or _runs_shipped_suites(config)):
        raise pytest.UsageError(_XDIST_REFUSAL)  # before xdist starts any worker
    if not settings.explicit:
        return  # built by the first test that asks for it (or never)
    _build_session(config)  # a bad option, profile or node stops the run before any test


def _runs_shipped_suites(config: pytest.Config) -> bool:
    """The command line names the shipped suites (a path into them, or --pyargs)."""
    suites = Path(__file__).resolve().parent / "suites"
    for arg in config.args:
        if arg.split("::")[0].startswith("pytest_gpufabric.suites"):
            return True
        path = (config.invocation_params.dir / arg.split("::")[0]).resolve()
        if path == suites or suites in path.parents:
            return True
    return False


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
    auto = dataclasses.replace(settings, instance=Setting("auto", "--gpufabric-list"))
    config.stash[SETTINGS_KEY] = settings
    name = settings.launcher.value
    launcher = None
    try:
        launcher = config.hook.pytest_gpufabric_make_launcher(config=config, name=name)
        nodes = launcher.nodes(detect=True) if launcher is not None else []
    except (SettingError, ValueError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return int(pytest.ExitCode.USAGE_ERROR)
    finally:
        if launcher is not None:
            launcher.close()  # the kubernetes launcher read the nodes in pods of its own
    if launcher is None:
        print(f"ERROR: --gpufabric-launcher: unknown launcher {name!r}", file=sys.stderr)
        return int(pytest.ExitCode.USAGE_ERROR)
    for node in nodes:  # read by the launcher where its ranks would run
        where = "this node" if launcher.name == "local" else f"node {node.name}"
        try:
            profile, how = choose_profile(auto, catalogue, node)
        except SettingError as exc:
            print(f"on {where}: {exc}")
        else:
            print(f"on {where}: {profile.name if profile else 'no profile'} [{how}]")
    return 0


def pytest_report_header(config: pytest.Config) -> list[str]:
    if SESSION_KEY not in config.stash:
        return []
    return header_lines(config.stash[SESSION_KEY])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    wanted = [name for name in CASE_FIXTURES if name in metafunc.fixturenames]
    if not wanted:
        return
    try:
        session = _build_session(metafunc.config)
    except pytest.UsageError as exc:
        # Raised again, as a usage error, when collection ends (here it would be a
        # collection error with a traceback).
        metafunc.config.stash[LAZY_ERROR_KEY] = str(exc)
        return
    cases: dict[str, Callable[[], Sequence[object]]] = {
        "gpufabric_bandwidth_case": session.bandwidth_cases,
        "gpufabric_correctness_case": session.correctness_cases,
        "gpufabric_nccl_check": lambda: list(CHECKS),
        "gpufabric_host_check": lambda: list(HOST_CHECKS),
        "gpufabric_isolation_run": lambda: ISOLATION_RUNS,
        "gpufabric_isolation_case": session.isolation_cases,
        "gpufabric_latency_case": session.latency_cases,
        "gpufabric_split_collective": lambda: [c.value for c in SPLIT_COLLECTIVES],
        "gpufabric_workload_case": session.workload_cases,
        "gpufabric_fleet_node": lambda: (
            ([n.name for n in session.fleet_nodes()[0]] if session.settings.fleet.value else [])
            or ["none"]
        ),
    }
    for name in wanted:
        try:
            values = cases[name]()
        except SettingError as exc:  # a layout that does not fit: one line at collection's end
            metafunc.config.stash[LAZY_ERROR_KEY] = str(exc)
            return
        ids = [str(getattr(v, "id", v)) for v in values]
        metafunc.parametrize(name, values, ids=ids)


# Suites run node checks first (they start the rank pool), then correctness, bandwidth, the
# NCCL evidence checks when the collectives have made NCCL connect everything, the host
# checks (NVLink counters compared after the main run's traffic), the split-cost comparison
# (its first case measures every baseline while the main pool still runs), and the isolation
# runs last, each run's path check before its bandwidth so that every pool starts once.
_ORDER = {
    "gpufabric_correctness_case": 1,
    "gpufabric_bandwidth_case": 2,
    "gpufabric_latency_case": 2,
    "gpufabric_nccl_check": 3,
    "gpufabric_host_check": 4,
    "gpufabric_split_collective": 5,
    "gpufabric_workload_case": 5,
    "gpufabric_isolation_run": 6,
    "gpufabric_isolation_case": 6,
    "gpufabric_fleet_node": 8,
}


def _order(item: pytest.Item) -> tuple[int, int, int]:
    names = getattr(item, "fixturenames", ())
    stage = max((_ORDER.get(name, 0) for name in names), default=0)
    if item.get_closest_marker("gpufabric_last") is not None:
        stage = max(_ORDER.values())
    params = getattr(getattr(item, "callspec", None), "params", {})
    run = params.get("gpufabric_isolation_run")
    case = params.get("gpufabric_isolation_case")
    if case is not None:
        run = case.run
    position = ISOLATION_RUNS.index(run) if run in ISOLATION_RUNS else 0
    return stage, position, int(case is not None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if LAZY_ERROR_KEY in config.stash:
        raise pytest.UsageError(config.stash[LAZY_ERROR_KEY])
    uses = any(set(FIXTURES) & set(getattr(item, "fixturenames", ())) for item in items)
    if uses and SESSION_KEY not in config.stash and SETTINGS_KEY in config.stash:
        _build_session(config)  # a usage error now, not a fixture error per test
    items.sort(key=_order)  # stable: every other order is kept
    if SESSION_KEY in config.stash:
        config.stash[SESSION_KEY].pool_order = _pool_order(items)


def _pool_order(items: Sequence[pytest.Item]) -> list[str]:
    """The rank pools the tests will ask for, in order, each run once (prestart's plan)."""
    order: list[str] = []
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "gpufabric" not in names:
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        case = params.get("gpufabric_isolation_case")
        run = case.run if case is not None else params.get("gpufabric_isolation_run")
        pools = (
            [run]
            if run
            else [DEFAULT, SPLIT]
            if "gpufabric_split_collective" in names
            else [DEFAULT]
        )
        order += [p for p in pools if p not in order]
    return order


class _SessionHooks:
    """Hooks that only exist while a gpufabric session does."""

    def __init__(self, session: FabricSession, config: pytest.Config) -> None:
        self.session = session
        self.config = config
        self.junit: Callable[[str, object], None] | None = None
        self.certification: Certification | None = None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """With pytest-html installed, a busbw test's picture joins its report (extras)."""
        report = yield
        if report.when == "call" and self.config.pluginmanager.hasplugin("html"):
            svg = busbw_svg(dict(report.user_properties))
            if svg is not None:
                from pytest_html import extras  # type: ignore[import-untyped]  # optional

                vars(report)["extras"] = [*getattr(report, "extras", []), extras.html(svg)]
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or not report.passed:
            message = ""
            if report.skipped and isinstance(report.longrepr, tuple):
                message = str(report.longrepr[2]).removeprefix("Skipped: ")
            elif report.failed:
                message = report.longreprtext
            self.session.records.add(
                TestRecord(report.nodeid, report.outcome, report.duration,
                           dict(report.user_properties), message)
            )  # fmt: skip

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """The verdict, before the JUnit file and the terminal summary are written."""
        self.session.close()
        if self.config.option.collectonly:
            return
        if self.session.records.checked:  # a verdict only where gpufabric checks ran
            self.certification = self.session.certification()
            allowed = self.session.settings.allow_uncertified.value
            if session.exitstatus == pytest.ExitCode.OK and not (
                self.certification.certified or allowed
            ):
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.junit is not None:
            for name, value in self.session.facts().items():
                self.junit(name, value)
            if self.certification is not None:
                self.junit("certification", self.certification.verdict)
                self.junit("certification_reason", self.certification.reason)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        for problem in write_reports(self.session, int(session.exitstatus), self.certification):
            if reporter is not None:
                reporter.write_line(problem, red=True)
            else:
                print(problem, file=sys.stderr)
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.INTERNAL_ERROR

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        lines = summary_lines(self.session, self.certification)
        if lines:
            terminalreporter.write_sep("-", "gpufabric")
            for line in lines:
                certified = line.startswith("CERTIFIED")
                rejected = line.startswith("NOT CERTIFIED")
                terminalreporter.write_line(line, green=certified, red=rejected, bold=certified
                                            or rejected)  # fmt: skip

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # Also reached after Ctrl-C and internal errors: no rank may outlive pytest.
        self.session.close()
        self.session.launcher.close()


@pytest.fixture(scope="session")
def gpufabric_session(
    request: pytest.FixtureRequest,
    record_testsuite_property: Callable[[str, object], None],
) -> Iterator[FabricSession]:
    """The run's FabricSession (profile, nodes, rank pools, records)."""
    session = _build_session(request.config)
    # Run-wide facts and the verdict go to the JUnit testsuite when the session finishes.
    request.config.stash[HOOKS_KEY].junit = record_testsuite_property
    yield session
    session.close()


@pytest.fixture
def gpufabric(
    gpufabric_session: FabricSession,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Fabric:
    """Checks for suite tests: ``gpufabric.check_busbw(case)`` and friends (see fabric.py)."""
    return Fabric(
        gpufabric_session,
        request.node,
        lambda: Path(tmp_path_factory.mktemp("gpufabric-artifacts", numbered=True)),
    )
