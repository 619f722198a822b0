"""The operator's own connection to the API server: kopf's login, one urllib3 pool, JSON in and out.

kopf logs in (:func:`login`, its ``on.login`` handler) and the operator's calls use the same
credentials, so both always talk to the same cluster as the same user. With the kubernetes
client installed, kopf's :func:`kopf.login_via_client` reads them (kubeconfig exec plugins and
all); without it (the operator's image), kopf's own service-account and kubeconfig readers do.
The image leaves the kubernetes client out: importing it cost 15 MB of the operator's memory
(kopf imports it whenever it is installed), for a transport the operator uses a handful of paths of.
"""

from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import urlencode

import kopf
import urllib3

from .settings import SETTINGS


class ApiError(Exception):
    """The API server answered outside 2xx: ``status``, ``reason`` and its ``body`` (a Status, as JSON text)."""

    def __init__(self, status: int, reason: str, body: str):
        super().__init__(f"({status}) {reason}: {body[:500]}")
        self.status, self.reason, self.body = status, reason, body


# What the API (or the way to it) can throw at a call; all of it is worth a retry, except what decide() reads
# from an ApiError's status.
API_FAILURES = (ApiError, urllib3.exceptions.HTTPError)

_lock = threading.Lock()
_connection: dict[str, Any] = {}


def _credentials(**kwargs: Any) -> kopf.ConnectionInfo | None:
    return (kopf.login_via_client(**kwargs)  # None when the kubernetes client is not installed
            or kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs))


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """kopf's login, kept for the operator's own calls (kopf calls it again when credentials expire)."""
    return connect(**kwargs)


def connect(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Log in as kopf would (``logger`` and ``settings`` keywords), for calls made before kopf runs (the Lease)."""
    info = _credentials(**kwargs)
    if info is None:
        return None
    pool = urllib3.PoolManager(
        num_pools=2,
        maxsize=SETTINGS.handler_threads,  # one connection per handler thread at most
        block=False,
        ssl_context=info.as_ssl_context() if info.server.startswith("https:") else None,
        timeout=urllib3.Timeout(total=SETTINGS.request_timeout),  # a hung API fails the round, which is retried
        retries=False,
    )
    with _lock:
        _connection.update(server=info.server.rstrip("/"), headers=info.as_http_headers(), pool=pool, login=kwargs)
    return info


def request(method: str, path: str, *, query: dict[str, Any] | None = None, body: Any = None,
            content_type: str = "application/json", accept: str = "application/json") -> dict[str, Any]:
    """One call; the answer as JSON. A status outside 2xx raises :class:`ApiError`."""
    url_path = path + ("?" + urlencode(query) if query else "")
    payload = None if body is None else json.dumps(body).encode()
    for attempt in (1, 2):
        with _lock:
            if "pool" not in _connection:
                raise RuntimeError("no API call before kopf's login (api_client.login) has run")
            server, headers, pool = _connection["server"], _connection["headers"], _connection["pool"]
        response = pool.request(method, server + url_path, body=payload,
                                headers={**headers, "Accept": accept, "Content-Type": content_type})
        if response.status != 401 or attempt == 2:
            break
        connect(**_connection["login"])  # the token was rotated (a projected service-account token): read it again
    data = response.data
    if not 200 <= response.status <= 299:
        raise ApiError(response.status, response.reason or "", data.decode("utf-8", "replace"))
    return json.loads(data) if data else {}
