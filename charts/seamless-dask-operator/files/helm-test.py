"""`helm test` check: the SeamlessDaskCluster API is served and the operator is healthy.

Runs in the operator image under the operator's ServiceAccount, and connects as
the operator does (its api_client: kopf's login, in a pod the service account);
outside a cluster that reads $KUBECONFIG, which is how tests/chart runs it
against a local API server.
Environment: CHECK_NAMESPACE (where to list), HEALTHZ_URL (optional).
"""

import logging
import os
import sys
import urllib.request

import kopf
from seamless_dask_operator import api_client

if api_client.login(logger=logging.getLogger("helm-test"), settings=kopf.OperatorSettings()) is None:
    sys.exit("no credentials: neither a service account nor $KUBECONFIG")

namespace = os.environ["CHECK_NAMESPACE"]
try:
    found = api_client.request("GET", f"/apis/seamless.dask.org/v1beta1/namespaces/{namespace}/seamlessdaskclusters",
                               query={"limit": 50})
except api_client.ApiError as exc:
    sys.exit(f"listing seamlessdaskclusters in {namespace}: {exc}")
names = [item["metadata"]["name"] for item in found.get("items", [])]
print(f"seamlessdaskclusters.seamless.dask.org/v1beta1 is served; in {namespace}: {names}")

url = os.environ.get("HEALTHZ_URL")
if url:
    with urllib.request.urlopen(url, timeout=10) as healthz:
        if healthz.status != 200:
            sys.exit(f"{url} answered {healthz.status}")
    print(f"operator healthy: {url} answered 200")
