"""Reports from a saved JSON report, without pytest:

    python -m pytest_gpufabric.report html report.json -o report.html [--bundle DIR]
        [--nccl-tests DIR_OR_FILE ...]

``--bundle``: the run's artifacts (its NCCL logs give the transport matrix); by default the
directory the report names (``run.replay`` or ``run.artifacts``), where it still exists.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .html import write_html
from .schema import report_problem


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_gpufabric.report")
    commands = parser.add_subparsers(dest="command", required=True)
    html = commands.add_parser("html", help="render a JSON report (--gpufabric-json) as HTML")
    html.add_argument("report", type=Path)
    html.add_argument("-o", "--output", type=Path, required=True)
    html.add_argument("--bundle", type=Path, help="the run's artifacts directory")
    html.add_argument(
        "--nccl-tests",
        type=Path,
        action="append",
        default=[],
        help="nccl-tests output (file or directory) to draw next to our curves",
    )
    args = parser.parse_args(argv)
    try:
        data = json.loads(args.report.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"error: {args.report}: {exc}", file=sys.stderr)
        return 2
    problem = report_problem(data)
    if problem is not None:
        print(f"error: {args.report}: {problem}", file=sys.stderr)
        return 2
    if args.bundle is not None and not args.bundle.is_dir():
        print(f"error: --bundle {args.bundle}: not a directory", file=sys.stderr)
        return 2
    try:
        write_html(args.output, data, args.bundle, args.nccl_tests)
    except OSError as exc:
        print(f"error: {args.output}: cannot write: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
