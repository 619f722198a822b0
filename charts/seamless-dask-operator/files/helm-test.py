"""`helm test` check: the SeamlessDaskCluster API is served and the operator is healthy.

Runs in the operator image under the operator's ServiceAccount (in-cluster
config); outside a cluster it falls back to $KUBECONFIG, which is how
tests/chart runs it against a local API server.
Environment: CHECK_NAMESPACE (where to list), HEALTHZ_URL (optional).
"""

import os
import sys
import urllib.request

from kubernetes import client, config

try:
    config.load_incluster_config()
except config.ConfigException:
    config.load_kube_config()

namespace = os.environ["CHECK_NAMESPACE"]
found = client.CustomObjectsApi().list_namespaced_custom_object(
    "seamless.dask.org", "v1alpha1", namespace, "seamlessdaskclusters", limit=50
)
names = [item["metadata"]["name"] for item in found.get("items", [])]
print(f"seamlessdaskclusters.seamless.dask.org/v1alpha1 is served; in {namespace}: {names}")

url = os.environ.get("HEALTHZ_URL")
if url:
    with urllib.request.urlopen(url, timeout=10) as response:
        if response.status != 200:
            sys.exit(f"{url} answered {response.status}")
    print(f"operator healthy: {url} answered 200")
