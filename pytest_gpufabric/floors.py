"""``python -m pytest_gpufabric.floors``: derive a profile's floors from measured runs (the
work is in profiles/floors.py)."""

from __future__ import annotations

import sys

from .profiles.floors import main

if __name__ == "__main__":
    sys.exit(main())
