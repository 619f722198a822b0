"""Seamless-Dask runtime: the cluster model and everything that runs on a Dask node.

Pure translations live in ``parameters``, ``durations``, ``dask_config``,
``worker_environment``, ``commands``, ``localcluster`` and ``jobqueue``;
the status protocol in ``status``; the ``seamless-dask-wrapper`` CLI in
``wrapper``; the worker plugin and throttle in ``plugin`` and ``throttle``.
"""

__version__ = "0.1.0"
