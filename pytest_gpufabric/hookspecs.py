"""Hooks pytest-gpufabric adds, for other plugins and conftest files.

Registered through ``pytest_addhooks``; see docs/architecture.md, "Launchers".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .launch.protocol import Launcher


@pytest.hookspec(firstresult=True)
def pytest_gpufabric_make_launcher(config: pytest.Config, name: str) -> Launcher | None:
    """Return the launcher called ``name`` (``--gpufabric-launcher NAME``), or None when the
    name is not yours. The first non-None result wins; the built-in launchers (``local``,
    ``replay``) answer last, so a plugin may also replace them.

    A launcher implements :class:`pytest_gpufabric.launch.protocol.Launcher`: it says which
    nodes the ranks run on (read where they run), reads their host facts, and starts rank
    pools whose ranks speak the rank protocol (launch/wire.py), for instance
    ``python -m pytest_gpufabric.rank.worker`` started by Slurm::

        def pytest_gpufabric_make_launcher(config, name):
            if name == "slurm":
                return SlurmLauncher(partition=config.getini("slurm_partition"))
            return None

    Raise :class:`pytest_gpufabric.settings.SettingError` for a bad configuration: it
    becomes a one-line usage error.
    """
