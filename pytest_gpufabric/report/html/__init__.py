"""The self-contained HTML report (page.py) and what it shows (data.py)."""

from __future__ import annotations

from .page import render, write_html

__all__ = ["render", "write_html"]
