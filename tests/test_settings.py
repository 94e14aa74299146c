"""Precedence CLI > GPUFABRIC_* env > ini > default, and errors that name their source."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_gpufabric.settings import SettingError, resolve

NONE: dict[str, str | None] = {}


def test_defaults() -> None:
    s = resolve(NONE, {}, NONE, cwd=Path("/work"))
    assert (s.instance.value, s.instance.source) == ("auto", "default")
    assert (s.timeout.value, s.nprocs.value, s.artifacts.value, s.json.value) == (
        120.0,
        None,
        None,
        None,
    )
    assert s.thresholds.value == ()
    assert not s.explicit


def test_cli_beats_env_beats_ini() -> None:
    ini = {"gpufabric_timeout": "30", "gpufabric_instance": "p4d.24xlarge", "gpufabric_nprocs": "8"}
    env = {"GPUFABRIC_TIMEOUT": "20", "GPUFABRIC_INSTANCE": "hgx-h200-4gpu"}
    cli = {"gpufabric_timeout": "10"}
    s = resolve(cli, env, ini, ini_file=Path("/etc/site/pytest.ini"), cwd=Path("/work"))
    assert (s.timeout.value, s.timeout.source) == (10.0, "--gpufabric-timeout")
    assert (s.instance.value, s.instance.source) == (
        "hgx-h200-4gpu",
        "environment variable GPUFABRIC_INSTANCE",
    )
    assert (s.nprocs.value, s.nprocs.source) == (
        8,
        "ini option gpufabric_nprocs in /etc/site/pytest.ini",
    )
    assert s.explicit


def test_paths_resolve_against_their_source() -> None:
    s = resolve(
        {"gpufabric_json": "out/r.json"},
        {"GPUFABRIC_ARTIFACTS": "logs"},
        {"gpufabric_thresholds": ["/site/thresholds"]},
        ini_file=Path("/site/pytest.ini"),
        cwd=Path("/work"),
    )
    assert s.json.value == Path("/work/out/r.json")
    assert s.artifacts.value == Path("/work/logs")
    assert s.thresholds.value == (Path("/site/thresholds"),)


def test_thresholds_repeat_on_the_command_line_and_split_in_env() -> None:
    cli = resolve({"gpufabric_thresholds": ["a.yaml", "b"]}, {}, NONE, cwd=Path("/w"))
    assert cli.thresholds.value == (Path("/w/a.yaml"), Path("/w/b"))
    env = resolve(NONE, {"GPUFABRIC_THRESHOLDS": "/x:/y"}, NONE, cwd=Path("/w"))
    assert env.thresholds.value == (Path("/x"), Path("/y"))
    assert env.thresholds.source == "environment variable GPUFABRIC_THRESHOLDS"


@pytest.mark.parametrize(
    ("cli", "env", "ini", "message"),
    [
        ({"gpufabric_timeout": "soon"}, {}, {},
         "--gpufabric-timeout: invalid value 'soon' from --gpufabric-timeout: not a number of seconds"),
        ({}, {"GPUFABRIC_TIMEOUT": "-3"}, {},
         "--gpufabric-timeout: invalid value '-3' from environment variable GPUFABRIC_TIMEOUT: "
         "must be a number of seconds > 0"),
        ({}, {}, {"gpufabric_nprocs": "0"},
         "--gpufabric-nprocs: invalid value '0' from ini option gpufabric_nprocs in /p/tox.ini: must be >= 1"),
        ({}, {"GPUFABRIC_NPROCS": "four"}, {},
         "--gpufabric-nprocs: invalid value 'four' from environment variable GPUFABRIC_NPROCS: not an integer"),
        ({"gpufabric_instance": "../etc/passwd"}, {}, {},
         "--gpufabric-instance: invalid value '../etc/passwd' from --gpufabric-instance: "
         "must be a profile name or 'auto'"),
    ],
)  # fmt: skip
def test_bad_values_name_option_value_and_source(
    cli: dict[str, str], env: dict[str, str], ini: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingError) as info:
        resolve(cli, env, ini, ini_file=Path("/p/tox.ini"), cwd=Path("/w"))
    assert str(info.value) == message


def test_emulated_nodes_option_env_and_ini() -> None:
    assert resolve(NONE, {}, NONE, cwd=Path("/w")).emulate_nodes.value == 1
    s = resolve(NONE, {"GPUFABRIC_EMULATE_NODES": "2"}, NONE, cwd=Path("/w"))
    assert (s.emulate_nodes.value, s.emulate_nodes.source) == (
        2,
        "environment variable GPUFABRIC_EMULATE_NODES",
    )
    s = resolve(NONE, {}, {"gpufabric_emulate_nodes": "4"}, cwd=Path("/w"))
    assert s.emulate_nodes.value == 4
    with pytest.raises(
        SettingError,
        match=r"--gpufabric-emulate-nodes: invalid value '0' from --gpufabric-emulate-nodes: must be >= 1",
    ):
        resolve({"gpufabric_emulate_nodes": "0"}, {}, NONE, cwd=Path("/w"))
