from __future__ import annotations

import pytest

from pytest_gpufabric.units import format_size, parse_size


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [("1048576", 1 << 20), ("1MiB", 1 << 20), ("1M", 1 << 20), ("256M", 256 << 20),
     ("1GiB", 1 << 30), ("8G", 8 << 30), ("4KiB", 4096), ("1GB", 10**9), (" 16 MiB ", 16 << 20)],
)  # fmt: skip
def test_parse_size(text: str, nbytes: int) -> None:
    assert parse_size(text) == nbytes


@pytest.mark.parametrize("text", ["", "MiB", "1.5GiB", "-1M", "0", "1TiB", "12 apples"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("nbytes", "text"),
    [
        (1 << 20, "1MiB"),
        (1 << 30, "1GiB"),
        (256 << 20, "256MiB"),
        (4084, "4084B"),
        (3 << 10, "3KiB"),
    ],
)
def test_format_size_round_trips(nbytes: int, text: str) -> None:
    assert format_size(nbytes) == text
    assert parse_size(format_size(nbytes)) == nbytes
