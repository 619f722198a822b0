"""Seamless-Dask runtime, grouped by who runs it.

- ``model/``: the cluster model and its pure translations (parameters, sizes, command lines,
  worker environment, the status model). The operator, the launcher and Dask processes all
  import it; it imports neither of the others, nor Dask.
- the package root (this level): code that runs inside Dask processes, loaded by name in a
  scheduler's, worker's or nanny's command line or preload (``scheduler_preload``, ``drain``,
  ``http_routes``, ``throttle.preload``, the worker ``plugin`` and what they use). It stays at
  the root because those names are a wire interface: an operator writes the pod commands of
  clusters whose image it pinned at creation (often an older runtime), and users name these
  modules in their own Dask configuration. ``kubernetes`` (the ``SeamlessDaskCluster`` launcher)
  stays here too, as its name is the cluster string users write:
  ``seamless_dask_runtime.kubernetes::SeamlessDaskCluster``.
- ``launcher/``: what starts clusters from outside: ``seamless-dask-wrapper`` and its backends,
  job scripts (``jobqueue``), the status file, ``kubectl sdc``.

Imports go down only: launcher → root → model (import-linter contracts in pyproject.toml).
"""

__version__ = "0.1.0"
