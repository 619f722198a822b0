"""The operator's connection: kopf's login read from a real kubeconfig, a real HTTP server on the other end."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import kopf
import pytest
import yaml
from seamless_dask_operator import api_client


class _API(BaseHTTPRequestHandler):
    """Answers with the Authorization header it saw; 401 to any token but the server's current one."""

    def do_GET(self) -> None:
        seen = self.headers.get("Authorization")
        if seen != f"Bearer {self.server.token}":  # type: ignore[attr-defined]
            self._answer(401, {"kind": "Status", "message": "Unauthorized"})
        elif self.path.startswith("/api/v1/namespaces/ns/pods/missing"):
            self._answer(404, {"kind": "Status", "message": 'pods "missing" not found'})
        else:
            self._answer(200, {"path": self.path, "authorization": seen})

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _API)
    server.token = "first"  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def _kubeconfig(path: Path, server: str, token: str) -> None:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))


def test_calls_use_kopfs_login_and_log_in_again_on_401(api: ThreadingHTTPServer, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api_client, "_connection", {})  # this test's connection goes with it
    kubeconfig = tmp_path / "kubeconfig"
    server = f"http://127.0.0.1:{api.server_address[1]}"
    _kubeconfig(kubeconfig, server, "first")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    try:  # with the kubernetes client installed kopf logs in through it, which read $KUBECONFIG at import
        from kubernetes.config import kube_config
        monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    except ImportError:
        pass
    info = api_client.login(logger=logging.getLogger("test"), settings=kopf.OperatorSettings())
    assert info is not None and info.server.rstrip("/") == server
    answer = api_client.request("GET", "/api/v1/pods", query={"labelSelector": "a=b,c"})
    assert answer == {"path": "/api/v1/pods?labelSelector=a%3Db%2Cc", "authorization": "Bearer first"}

    # The token is rotated (the kubelet rewrites a projected service-account token, say): one 401, then the
    # credentials are read again and the call goes through.
    api.token = "second"  # type: ignore[attr-defined]
    _kubeconfig(kubeconfig, server, "second")
    assert api_client.request("GET", "/api/v1/pods")["authorization"] == "Bearer second"

    with pytest.raises(api_client.ApiError) as refused:
        api_client.request("GET", "/api/v1/namespaces/ns/pods/missing")
    assert refused.value.status == 404 and 'pods \\"missing\\" not found' in refused.value.body
