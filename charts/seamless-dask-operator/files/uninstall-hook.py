"""`helm uninstall` (pre-delete hook): stop the operator while its RBAC still exists.

Helm deletes a release's objects together, so the operator's RBAC could go while its pods were still
stopping, and the finalizers they release on the way out stayed (every SeamlessDaskCluster then waited
for an operator that never came). This hook runs first: it scales the operator's Deployment to 0 and
waits until its pods are gone. The last one sees no replica to follow it and takes its finalizer off
every SeamlessDaskCluster; the clusters keep running, and deleting one later completes at once
(garbage collection removes its children).
Environment: DEPLOYMENT, NAMESPACE, SELECTOR (the operator pods' labels), TIMEOUT (seconds).
"""

import logging
import os
import sys
import time

import kopf
from seamless_dask_operator import api_client

if api_client.connect(logger=logging.getLogger("uninstall"), settings=kopf.OperatorSettings()) is None:
    sys.exit("no credentials: neither a service account nor $KUBECONFIG")
namespace, deployment = os.environ["NAMESPACE"], os.environ["DEPLOYMENT"]
try:
    api_client.request("PATCH", f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}/scale",
                       body={"spec": {"replicas": 0}}, content_type="application/merge-patch+json")
except api_client.ApiError as exc:
    if exc.status != 404:
        sys.exit(f"scaling {namespace}/{deployment} to 0: {exc}")
    print(f"{namespace}/{deployment} is gone already")
    sys.exit(0)
deadline = time.monotonic() + float(os.environ.get("TIMEOUT", "120"))
while time.monotonic() < deadline:
    pods = api_client.request("GET", f"/api/v1/namespaces/{namespace}/pods",
                              query={"labelSelector": os.environ["SELECTOR"]}).get("items") or []
    if not pods:
        print(f"{namespace}/{deployment} scaled to 0: its pods released their SeamlessDaskClusters")
        sys.exit(0)
    time.sleep(1)
sys.exit(f"{namespace}/{deployment}: pods still there after {os.environ.get('TIMEOUT')} s")
