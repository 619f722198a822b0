"""The kopf handlers: thin shells around :func:`decide.decide`. Importing this package registers them.

- ``watching``: the indexes of our pods and Services, and the pod events that wake a round;
- ``observing``: what a round sees of a cluster;
- ``executing``: carrying out a round's plan;
- ``cluster_loop``: the rounds (on create/update/resume, and following every cluster);
- ``following``: when each cluster's follow round runs (a timer per cluster, woken by its children);
- ``lifecycle``: startup, deletion, release on shutdown, the CRD deleted;
- ``memo``: what is kept between rounds.

``kopf run -m seamless_dask_operator.handlers`` runs them (the operator's ``main`` does the same).
"""

from .. import (
    api_client,  # noqa: F401  (kopf's login: the operator's own calls use its credentials)
    kopf_requests,
    kopf_toggles,
)
from . import cluster_loop, lifecycle, watching  # noqa: F401  (registers the handlers)

kopf_requests.install()  # at most 32 of kopf's own requests at once: a burst of 1,000 patches overran the memory
kopf_toggles.install()  # before any watch starts: a restart's listing would wake every object for every object
