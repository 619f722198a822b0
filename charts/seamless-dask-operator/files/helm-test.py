"""`helm test` check: the SeamlessDaskCluster API is served and the operator is healthy.

Runs in the operator image under the operator's ServiceAccount, and logs in as
the operator does (kopf's service-account reader); outside a cluster it reads
$KUBECONFIG, which is how tests/chart runs it against a local API server.
Environment: CHECK_NAMESPACE (where to list), HEALTHZ_URL (optional).
"""

import json
import os
import sys
import urllib.request

import kopf
import urllib3

settings = kopf.OperatorSettings()
info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(settings=settings)
if info is None:
    sys.exit("no credentials: neither a service account nor $KUBECONFIG")

namespace = os.environ["CHECK_NAMESPACE"]
http = urllib3.PoolManager(ssl_context=info.as_ssl_context() if info.server.startswith("https:") else None)
response = http.request(
    "GET", f"{info.server}/apis/seamless.dask.org/v1alpha1/namespaces/{namespace}/seamlessdaskclusters?limit=50",
    headers={**info.as_http_headers(), "Accept": "application/json"}, timeout=30,
)
if response.status != 200:
    sys.exit(f"listing seamlessdaskclusters in {namespace}: {response.status} {response.data[:500]!r}")
names = [item["metadata"]["name"] for item in json.loads(response.data).get("items", [])]
print(f"seamlessdaskclusters.seamless.dask.org/v1alpha1 is served; in {namespace}: {names}")

url = os.environ.get("HEALTHZ_URL")
if url:
    with urllib.request.urlopen(url, timeout=10) as healthz:
        if healthz.status != 200:
            sys.exit(f"{url} answered {healthz.status}")
    print(f"operator healthy: {url} answered 200")
