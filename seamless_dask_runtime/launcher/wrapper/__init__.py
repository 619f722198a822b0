"""``seamless-dask-wrapper``: status file in, supervised Dask cluster out."""
