"""Screenshots of the HTML report for docs/img (docs/html-report.md), from recorded runs,
in a real headless Chromium:

    python validation/html_screenshots.py docs/img

healthy: 2 × H200 run K (healthy1) judged by the lab profile; failing: the same host with
NCCL_P2P_LEVEL=LOC (tests/data/runs/2026-11-30-h200x2-p2p-loc); fleet: the 2 × H200 fleet
run with two bad nodes.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from browser import Browser, find  # noqa: E402

RUNS = REPO / "tests" / "data" / "runs"
PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gf-shots-"))
    k = RUNS / "2026-11-30-h200x2-K"
    suites = str(REPO / "suites")
    pages = {
        "html-healthy": [*PYTEST, suites, f"--gpufabric-replay={k / 'healthy1'}",
                         f"--gpufabric-thresholds={REPO / 'validation/profiles-lab2'}",
                         "--gpufabric-instance=h200-2gpu-lab"],
        "html-p2p-loc": [*PYTEST, suites,
                         f"--gpufabric-replay={RUNS / '2026-11-30-h200x2-p2p-loc' / 'bundle'}",
                         f"--gpufabric-thresholds={REPO / 'validation/profiles-lab2'}",
                         "--gpufabric-instance=h200-2gpu-lab"],
    }  # fmt: skip
    for name, command in pages.items():
        subprocess.run([*command, f"--gpufabric-html={work / name}.html"], cwd=work, check=False,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    fleet = RUNS / "2026-11-30-h200x2-fleet"
    subprocess.run([sys.executable, "-m", "pytest_gpufabric.report", "html",
                    str(fleet / "faults.report.json"), "-o", str(work / "html-fleet.html"),
                    "--bundle", str(fleet / "faults")],
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    binary = find()
    if binary is None:
        print("no chromium", file=sys.stderr)
        return 1
    browser = Browser(binary)
    try:
        for name in (*pages, "html-fleet"):
            requests = browser.open(work / f"{name}.html")
            browser.screenshot(out / f"{name}.png")
            size = (work / f"{name}.html").stat().st_size
            print(f"{name}: {size} bytes of HTML, requests {requests}")
    finally:
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "img"))
