"""``python -m pytest_gpufabric.catalogue list|check|schema``: the instance profiles without
pytest (the work is in profiles/catalogue.py)."""

from __future__ import annotations

import sys

from .profiles.catalogue import main

if __name__ == "__main__":
    sys.exit(main())
