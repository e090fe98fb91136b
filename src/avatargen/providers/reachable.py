"""A batch's server that nothing answers at: stop before anything is made, spent or recorded.

The pre-flight probe (BatchRunner.preflight) sees "connection refused" (or a name that does not
resolve) at once; sending the jobs anyway only adds retries, an empty output folder and a
`retry` hint for a server that is not there. Only a refusal stops the batch: a timeout, a 503
(a cold or scaled-to-zero endpoint) or a 401 are left to the jobs' own waits and messages.
"""

from __future__ import annotations

from typing import Any

from avatargen.errors import NetworkError

SERVE_DEFAULT_URL = "http://127.0.0.1:8000/"


def refused(report: Any) -> bool:
    """True when the probe's connection was refused or its host does not resolve."""
    return bool(report is not None and report.extra.get("refused"))


def every_server_refused(provider: Any, report: Any) -> bool:
    """`report` (the provider's own probe) refused, and so did every other server of a pool."""
    if not refused(report):
        return False
    members = getattr(provider, "members", None) or []
    return all(refused(member.provider.status()) for member in members[1:])


def nothing_listens(model: Any, report: Any) -> NetworkError:
    """Exit 8 naming the URL, where it came from and how to start a server there."""
    source = report.extra.get("url_source") or ""
    where = f" (from {source})" if source and source != "--endpoint" else ""
    return NetworkError(
        f"nothing answers at {report.url}{where} for {model.alias}: {report.detail}",
        f"start the server first (`avatargen serve` listens on {SERVE_DEFAULT_URL} by default), "
        "or pass the URL of a running one with --endpoint; nothing was made or spent",
    )
