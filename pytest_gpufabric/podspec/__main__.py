"""``python -m pytest_gpufabric.podspec FILE``: exit 0 without errors, 1 with an error
finding, 2 when the file or the profile cannot be used (one line on stderr)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..profiles.model import Profile
from .instance import profile_by_name, profile_from_file
from .lint import lint_file
from .source import PodspecError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_gpufabric.podspec",
        description="Lint a training pod spec (Pod, Job, JobSet, Deployment, List, ...) "
        "against an instance profile before GPU time is spent.",
    )
    parser.add_argument("file", type=Path, help="YAML file, one or more documents")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--instance", metavar="NAME",
        help="a shipped profile (python -m pytest_gpufabric.catalogue list); default: the "
        "instance type the pod's nodeSelector or node affinity names",
    )  # fmt: skip
    which.add_argument("--profile", type=Path, metavar="PATH.yaml", help="a profile file")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        profile: Profile | None = None
        how = ""
        if args.instance:
            profile, how = profile_by_name(args.instance), "from --instance"
        elif args.profile:
            profile, how = profile_from_file(args.profile), "from --profile"
        report = lint_file(args.file, profile, how=how)
    except PodspecError as exc:
        print(f"podspec: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.render())
    return 1 if report.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
