"""The pod-spec preflight as a test of the gate (suites/test_podspec.py): seed 000's split
pods and a p5 JobSet that lost its EFA devices fail it, each finding with its line and
remedy; a sound spec passes; without a spec the test is skipped as not asked."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_plugin_logic import HEALTHY_H200, PLUGIN_ARGS, scripted

REPO = Path(__file__).resolve().parent.parent
SUITE = REPO / "suites" / "test_podspec.py"
PODSPECS = Path(__file__).parent / "data" / "podspecs"


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    scripted(pytester, script=HEALTHY_H200)
    return pytester.runpytest(str(SUITE), "-p", "no:cacheprovider", *PLUGIN_ARGS,
                              "--gpufabric-launcher=scripted", "-rs", *args)  # fmt: skip


def test_a_sound_training_jobset_passes(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--gpufabric-instance=p4d.24xlarge",
                 f"--gpufabric-podspec={REPO / 'deploy' / 'examples' / 'training-jobset.yaml'}")  # fmt: skip
    result.assert_outcomes(passed=1)


def test_a_jobset_without_efa_fails_with_lines_and_remedies(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--gpufabric-instance=p5.48xlarge",
                 f"--gpufabric-podspec={PODSPECS / 'jobset-p5.yaml'}")  # fmt: skip
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*jobset-p5.yaml:*: error [[]rdma-devices[]] JobSet llama-3-70b / workers*",
            "  remedy: *vpc.amazonaws.com/efa*",
        ]
    )


def test_without_a_spec_it_is_not_asked(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--gpufabric-instance=hgx-h200-4gpu")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED *no pod spec to lint (--gpufabric-podspec FILE)"])


def test_a_missing_spec_is_a_one_line_usage_error(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--gpufabric-podspec=nosuch.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --gpufabric-podspec: */nosuch.yaml (from --gpufabric-podspec): no such file"]
    )
