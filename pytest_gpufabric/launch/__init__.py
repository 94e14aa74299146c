"""Launchers start rank pools; see base.py for the interface they share."""

from __future__ import annotations
