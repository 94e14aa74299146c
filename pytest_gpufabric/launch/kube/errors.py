"""The one error of the kubernetes launcher: the run cannot start or go on on the cluster."""

from __future__ import annotations

from ...settings import SettingError

WHERE = "--gpufabric-launcher kubernetes"


class KubeError(SettingError):
    """The run cannot start on the cluster; one line naming what and where, with a remedy."""
