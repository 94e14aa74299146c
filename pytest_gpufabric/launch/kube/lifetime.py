"""How long the run's objects live: from the parent's creation until the controller deletes
them (end of run, Ctrl-C, SIGTERM), or, if the controller is killed outright, until the
parent's deadline passes without renewal. A parent is a Job whose pod is never placed
(manifests.py): when its ``activeDeadlineSeconds`` passes the Job controller fails it, the TTL
controller deletes it (``ttlSecondsAfterFinished: 0``) and the garbage collector deletes every
object that names it as its only owner. Nothing on the controller's side has to survive.

Renewing means a new parent, not a later deadline: on 1.20 a Job whose deadline was patched
never fails (the Job controller's queue keeps the earlier, dropped wake-up; measured: a 10 s
deadline patched to 13 s, still running after 45 s). So every half expiry a new parent with
a fixed deadline is made and every object of the run is handed to it; the old one expires.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from . import manifests
from .api import Api, reason

# A deleted pod vanishes once its kubelet has killed it and confirmed (its status manager
# syncs every 10 s): 5-18 s on the test cluster, once more than 60 s on a loaded 2-core one.
GONE_TIMEOUT_S = 180.0


class Lifetime:
    def __init__(self, api: Api, namespace: str, run: str, expiry_s: float) -> None:
        self.api = api
        self.namespace = namespace
        self.run = run
        self.expiry_s = expiry_s
        self.parent: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._previous_sigterm: Any = None
        self.problems: list[str] = []  # what the clean-up could not do
        self._workloads: list[Callable[[], object]] = []  # deletions of a JobSet, a Job
        self._owned: list[Callable[[list[dict[str, Any]]], object]] = []  # their owner patches
        self._jobset = False

    def begin(self) -> dict[str, Any]:
        """Create the parent and keep it alive; SIGTERM now unwinds like Ctrl-C."""
        self._trap_sigterm()
        body = manifests.parent_job(self.run, self.namespace, self.expiry_s)
        created = self.api.batch.create_namespaced_job(self.namespace, body)
        self.parent = dict(self.api.client.sanitize_for_serialization(created))
        self._renewer = threading.Thread(target=self._renew, daemon=True, name="gpufabric-lease")
        self._renewer.start()
        return self.parent

    def _renew(self) -> None:
        """Every half expiry: a new parent, and every object of the run handed to it."""
        lease = 0
        while not self._stop.wait(self.expiry_s / 2):
            lease += 1
            with contextlib.suppress(Exception):  # the next renewal tries again
                body = manifests.parent_job(
                    self.run, self.namespace, self.expiry_s, f"{self.run}-{lease}"
                )
                created = self.api.batch.create_namespaced_job(self.namespace, body)
                owners = manifests.owned_by(self.api.client.sanitize_for_serialization(created))
                # A JSON patch replaces the list (a strategic merge would keep every old one).
                self._hand_over([{"op": "replace", "path": "/metadata/ownerReferences",
                                  "value": owners}])  # fmt: skip

    def _hand_over(self, patch: list[dict[str, Any]]) -> None:
        core, raw = self.api.core, {"_preload_content": False}
        pods = core.list_namespaced_pod(
            self.namespace, label_selector=manifests.rank_selector(self.run)
        ).items
        for pod in pods:
            _release(core.patch_namespaced_pod(pod.metadata.name, self.namespace, patch, **raw))
        with contextlib.suppress(Exception):  # a JobSet makes its own Service
            _release(core.patch_namespaced_service(self.run, self.namespace, patch, **raw))
        for owned in self._owned:
            owned(patch)

    def _trap_sigterm(self) -> None:
        def terminate(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt("SIGTERM")  # pytest unwinds; the launcher cleans up

        with contextlib.suppress(ValueError):  # only the main thread may set handlers
            self._previous_sigterm = signal.signal(signal.SIGTERM, terminate)

    def end(self, *, keep: bool) -> None:
        """Delete everything the run made and wait until it is gone (``keep``: leave it to
        expire, for debugging)."""
        self._stop.set()
        if self._previous_sigterm is not None:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, self._previous_sigterm)
        if self.parent is None or keep:
            return
        core, batch = self.api.core, self.api.batch
        label = manifests.selector(self.run)
        # The parent first: its Job controller then no longer re-creates its pod, and nothing
        # waits on the garbage collector (which can stall for a minute after a CRD is gone).
        # Unparsed answers (_preload_content=False): an API server older than the client
        # answers some deletions with a Status the client's typed models reject.
        raw = {"_preload_content": False}
        steps: list[Callable[[], object]] = [
            lambda: batch.delete_collection_namespaced_job(  # every parent, and a Job
                self.namespace, label_selector=label, propagation_policy="Background", **raw
            ),
            *self._workloads,
            lambda: core.delete_collection_namespaced_pod(
                self.namespace, label_selector=label, grace_period_seconds=1, **raw
            ),
            lambda: core.delete_namespaced_service(self.run, self.namespace, **raw),
        ]
        for step in steps:
            try:
                _release(step())
            except Exception as exc:
                if getattr(exc, "status", None) != 404:
                    self.problems.append(reason(exc))
        deadline = time.monotonic() + GONE_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                left = self.leftovers()
            except Exception as exc:
                self.problems.append(reason(exc))
                return
            if not left:
                return
            time.sleep(0.5)
        self.problems.append(f"still there after {GONE_TIMEOUT_S:g} s: {', '.join(left)}")

    def owns_jobset(self, name: str) -> None:
        self._jobset = True
        self._owned.append(
            lambda patch: _release(self.api.custom.patch_namespaced_custom_object(
                "jobset.x-k8s.io", "v1alpha2", self.namespace, "jobsets", name, patch,
                _preload_content=False,
            ))
        )  # fmt: skip
        self._workloads.append(
            lambda: self.api.custom.delete_namespaced_custom_object(
                "jobset.x-k8s.io", "v1alpha2", self.namespace, "jobsets", name,
                propagation_policy="Background", _preload_content=False,
            )
        )  # fmt: skip

    def owns_job(self, name: str) -> None:
        self._owned.append(
            lambda patch: _release(self.api.batch.patch_namespaced_job(
                name, self.namespace, patch, _preload_content=False
            ))
        )  # fmt: skip
        # Its deletion is the run's: every Job with the run's label goes in end().

    def leftovers(self) -> list[str]:
        """The run's objects that still exist, as kind/name."""
        label = manifests.selector(self.run)
        found = [
            f"pod/{p.metadata.name}"
            for p in self.api.core.list_namespaced_pod(self.namespace, label_selector=label).items
        ]
        found += [
            f"service/{s.metadata.name}"
            for s in self.api.core.list_namespaced_service(
                self.namespace, label_selector=label
            ).items
        ]
        found += [
            f"job/{j.metadata.name}"
            for j in self.api.batch.list_namespaced_job(self.namespace, label_selector=label).items
        ]
        if self._jobset:
            listed = self.api.custom.list_namespaced_custom_object(
                "jobset.x-k8s.io", "v1alpha2", self.namespace, "jobsets", label_selector=label
            )
            found += [f"jobset/{j['metadata']['name']}" for j in listed.get("items", [])]
        return found


def _release(response: object) -> None:
    """Give an unread answer's connection back to the pool."""
    release = getattr(response, "release_conn", None)
    if callable(release):
        release()
