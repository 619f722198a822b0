"""``kubectl sdc``: the daily tools for SeamlessDaskClusters, a kubectl plugin (console script ``kubectl-sdc``).

- ``status NAME``: phase, conditions, workers with their memory (from the scheduler), recent Events
- ``dashboard NAME``: port-forward the Dask dashboard and print its URL
- ``client NAME``: the scheduler's address and a ready-to-paste ``distributed.Client`` snippet
  (port-forwarded from outside the cluster)
- ``logs NAME [--scheduler|--workers] [-f]``: the pods' logs, each line prefixed with its pod
- ``scale NAME --replicas N`` (or ``--minimum``/``--maximum``/``--adaptive``)
- ``recipe --image IMAGE``: the Seamless-on-Kubernetes recipe (seamless-config files, environment)

It shells out to the real ``kubectl`` (:mod:`.kubectl`): ``-n``, ``--context``
and ``--kubeconfig`` mean what they mean to kubectl. It needs only the Python
standard library and :mod:`seamless_dask_runtime.model.identity`, so the krew archive
(:mod:`.package`) runs with any ``python3``.
"""
