"""The connection to the API server: the kubeconfig (KUBECONFIG, ~/.kube/config) from a CI
runner or a laptop, the pod's service account inside a cluster. The client library is an
optional dependency (``pip install pytest-gpufabric[kubernetes]``), imported only here and
by the launcher, so the rest of the plugin never needs it."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...settings import SettingError

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass
class Api:
    client: Any  # kubernetes.client.ApiClient
    core: Any  # CoreV1Api
    batch: Any  # BatchV1Api
    custom: Any  # CustomObjectsApi
    extensions: Any  # ApiextensionsV1Api
    where: str  # "kubeconfig /root/.kube/config, context x" or "in-cluster service account"
    namespace: str  # the context's or the pod's namespace; "default" otherwise
    # Exec streams get a client of their own: kubernetes.stream.stream() swaps its client's
    # request() for a websocket call while it opens one, which other threads' calls on the
    # same client would take (fleet pools open streams from several threads at once).
    exec_core: Any = None  # CoreV1Api on its own ApiClient
    exec_lock: threading.Lock = field(default_factory=threading.Lock)

    def version(self) -> tuple[int, int]:
        """The server's (major, minor), e.g. (1, 20); "1.21+" counts as 21."""
        from kubernetes import client as k8s

        info = k8s.VersionApi(self.client).get_code()
        return _digits(info.major), _digits(info.minor)

    def close(self) -> None:
        self.client.close()
        if self.exec_core is not None:
            self.exec_core.api_client.close()


def _digits(text: str) -> int:
    return int("".join(c for c in text if c.isdigit()) or 0)


def connect() -> Api:
    """The API server this process can reach; SettingError (one line) when none."""
    try:
        from kubernetes import client as k8s
        from kubernetes import config as kconfig
    except ImportError:
        raise SettingError(
            "--gpufabric-launcher kubernetes: the Python kubernetes client is not installed: "
            "pip install 'pytest-gpufabric[kubernetes]'"
        ) from None
    kubeconfig = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or str(
        Path.home() / ".kube" / "config"
    )
    configuration = k8s.Configuration()
    if Path(kubeconfig).is_file():
        try:
            kconfig.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=configuration
            )
            _, context = kconfig.list_kube_config_contexts(  # type: ignore[no-untyped-call]
                config_file=kubeconfig
            )
        except Exception as exc:  # the library raises ConfigException and plain errors alike
            raise SettingError(f"--gpufabric-launcher kubernetes: {kubeconfig}: {exc}") from None
        namespace = (context or {}).get("context", {}).get("namespace") or "default"
        where = f"kubeconfig {kubeconfig}, context {(context or {}).get('name', '?')}"
    elif (SERVICE_ACCOUNT / "token").is_file():
        try:
            kconfig.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        except Exception as exc:
            raise SettingError(
                f"--gpufabric-launcher kubernetes: in-cluster config: {exc}"
            ) from None
        namespace = (SERVICE_ACCOUNT / "namespace").read_text().strip() or "default"
        where = f"in-cluster service account ({configuration.host})"
    else:
        raise SettingError(
            "--gpufabric-launcher kubernetes: no cluster to talk to: no kubeconfig at "
            f"{kubeconfig} (KUBECONFIG) and no service account in {SERVICE_ACCOUNT}"
        )
    api_client = k8s.ApiClient(configuration)
    return Api(
        api_client,
        k8s.CoreV1Api(api_client),
        k8s.BatchV1Api(api_client),
        k8s.CustomObjectsApi(api_client),
        k8s.ApiextensionsV1Api(api_client),
        where,
        namespace,
        k8s.CoreV1Api(k8s.ApiClient(configuration)),
    )


def reason(exc: BaseException) -> str:
    """An API error in one line: the server's message, not the client's dump of headers (an
    exec stream's refusal carries the server's Status inside the exception's text)."""
    body = getattr(exc, "body", None)
    text = body if isinstance(body, (str, bytes)) else str(getattr(exc, "reason", "") or "")
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    start = text.find("{")
    if start >= 0:
        import json

        try:
            status = json.loads(text[start:])
        except ValueError:
            status = None
        if isinstance(status, dict) and status.get("message"):
            code = status.get("code") or getattr(exc, "status", "?")
            return f"{code} {status.get('reason', '')}: {status['message']}".replace(" :", ":")
    status = getattr(exc, "status", None)
    why = getattr(exc, "reason", None)
    if status is not None or why is not None:
        return f"{status} {why}".strip()
    return f"{type(exc).__name__}: {exc}".splitlines()[0]
