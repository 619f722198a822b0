"""``python -m seamless_dask_runtime.launcher.kubectl_plugin`` is ``kubectl sdc``."""

from .cli import run

run()
