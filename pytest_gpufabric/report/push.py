"""The run's Prometheus metrics (``metrics.render``), pushed to a Prometheus Pushgateway.

The textfile collector (``--gpufabric-metrics``) suits a run on a long-lived node. A nightly
job's pod is gone before any scrape would reach it, so it pushes instead: the gateway keeps
the last push of each group until Prometheus scrapes it.

Pushgateway API (https://github.com/prometheus/pushgateway#url): ``PUT`` to
``/metrics/job/<job>{/<label>/<value>}`` replaces every metric of that group. Beware: labels
of the pushed samples that are also grouping labels are overwritten with the grouping value,
silently (``instance="p5.48xlarge"`` pushed under ``instance/nightly`` becomes
``instance="nightly"``).
"""

from __future__ import annotations

import base64
import http.client
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping

CONTENT_TYPE = "text/plain; version=0.0.4"
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Values sent as they are; any other (empty, "/", "%", "..", non-ASCII) goes as base64.
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.~-]+")
_BODY_CHARS = 300


class PushError(Exception):
    """A push that did not land; ``str()`` is one line naming the URL and the reason."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"Pushgateway {url}: {reason}")
        self.url = url
        self.reason = reason


def _segment(name: str, value: str) -> str:
    """``name/value`` of a grouping-key path, ``name@base64/...`` where a plain one breaks."""
    if _PLAIN_VALUE.fullmatch(value) and value not in (".", ".."):
        return f"{name}/{value}"
    # The router drops an empty segment, so an empty value needs the "=" padding at least.
    encoded = base64.urlsafe_b64encode(value.encode("utf-8")).decode("ascii")
    return f"{name}@base64/{encoded or '='}"


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _BODY_CHARS else text[:_BODY_CHARS] + "…"


def _http_reason(error: urllib.error.HTTPError) -> str:
    try:
        body = error.read().decode("utf-8", errors="replace")
    except (OSError, http.client.HTTPException):
        body = ""
    reason = f"HTTP {error.code}: {_one_line(body) or error.reason}"
    if 300 <= error.code < 400:  # urllib follows no redirect of a PUT
        reason += f" (redirect to {error.headers.get('Location')} not followed)"
    return reason


def push(
    url: str,
    text: str,
    *,
    job: str = "gpufabric",
    grouping: Mapping[str, str] = {},
    timeout_s: float = 10.0,
) -> str:
    """PUT ``text`` (Prometheus text format) to the group ``job`` + ``grouping`` of the
    Pushgateway at ``url`` (``http://host:9091``), replacing what that group held.

    Returns the URL pushed to; raises :class:`PushError` when the push did not land.
    """
    base = url.rstrip("/")
    try:
        parts = urllib.parse.urlsplit(base)
    except ValueError as error:
        raise PushError(url, f"bad URL: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise PushError(url, "bad URL: want http(s)://host[:port][/prefix]")
    for name in grouping:
        # A name with "/" or "@" would change the path's meaning; "job" is set by ``job``.
        if not _LABEL_NAME.fullmatch(name) or name.startswith("__") or name == "job":
            raise PushError(url, f"bad grouping label name {name!r}")
    path = "/".join([_segment("job", job), *(_segment(k, v) for k, v in grouping.items())])
    target = f"{base}/metrics/{path}"
    # The scheme is http(s), checked above.
    request = urllib.request.Request(  # noqa: S310
        target, data=text.encode("utf-8"), method="PUT", headers={"Content-Type": CONTENT_TYPE}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            response.read()
    except urllib.error.HTTPError as error:  # before URLError: it is one
        raise PushError(target, _http_reason(error)) from None
    except urllib.error.URLError as error:
        raise PushError(target, _transport_reason(error.reason, timeout_s)) from None
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise PushError(target, _transport_reason(error, timeout_s)) from None
    return target


def _transport_reason(error: object, timeout_s: float) -> str:
    if isinstance(error, str):  # URLError's reason may be a plain message
        return _one_line(error)
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    detail = _one_line(str(error))
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__
