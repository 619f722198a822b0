"""The SeamlessDaskCluster operator.

- ``resource``: the custom resource's identity and how its spec splits into
  the cluster model and Kubernetes options (pure);
- ``builders/``: pure functions from the model to Kubernetes objects;
- ``handlers``: the kopf handlers (thin: read, call the core, write);
- ``kube``: the few Kubernetes API calls the handlers make;
- ``scheduler_api``: the scheduler's HTTP API (adaptive target, retire, activity);
- ``status``: the resource's ``.status`` from observed state (pure);
- ``main``: the ``seamless-dask-operator`` console script.
"""
