"""How evidence is quoted in findings: the line's text and where it stands."""

from __future__ import annotations


def quote(text: str, where: object) -> str:
    return f'"{text}" ({where})'
