"""The cluster model: parameters, durations and sizes, identity, sizing, command lines, the worker
environment and the status model. Pure, and without Dask or dask-jobqueue, so the operator (whose
image has neither) and the launcher share it with the code in Dask processes."""
