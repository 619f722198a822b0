"""What starts and watches clusters from outside them: ``seamless-dask-wrapper`` (``wrapper``) and
its local, dask-jobqueue, Kubernetes and generic backends, job scripts (``jobqueue``), the
launcher's status file (``statusfile``) and the ``kubectl sdc`` plugin (``kubectl_plugin``)."""
