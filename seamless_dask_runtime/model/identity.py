"""Names and numbers every part agrees on: the resource's identity, ports, labels, child names, variables.

The operator, the wrapper's Kubernetes backend, the chart's tests and the
CRD (checked by a test) all read them from here; nothing restates them.
"""

from __future__ import annotations

# -- the custom resource ----------------------------------------------------
GROUP = "seamless.dask.org"
VERSION = "v1beta1"  # stored, and what the operator and the wrapper speak
# Served beside VERSION with the same schema (the API server converts by apiVersion alone): a resource made as
# v1alpha1 keeps answering to `kubectl get sdc.v1alpha1.seamless.dask.org`.
EARLIER_VERSIONS = ("v1alpha1",)
PLURAL = "seamlessdaskclusters"
KIND = "SeamlessDaskCluster"
API_VERSION = f"{GROUP}/{VERSION}"
FINALIZER = f"{GROUP}/finalizer"
DEFAULT_IMAGE = "ghcr.io/seamless-dask/seamless-dask-runtime:0.1.0"

# -- Dask ports (in a pod every process has its own IP, so they are fixed) ---
COMM_PORT = 8786
DASHBOARD_PORT = 8787
WORKER_DASHBOARD_PORT = 8788

# -- labels and annotations on children (dask-kubernetes' label names, so its tooling recognises our pods) --
CLUSTER_LABEL = "dask.org/cluster-name"
COMPONENT_LABEL = "dask.org/component"
MANAGED_BY = "seamless-dask-operator"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
WORKER_INDEX_LABEL = f"{GROUP}/worker-index"
TEMPLATE_HASH_ANNOTATION = f"{GROUP}/template-hash"
SCHEDULER, WORKER = "scheduler", "worker"
# A new scheduler started beside the running one (a rollout): the Service does not select it until it is Ready
# and takes over.
SCHEDULER_CANDIDATE = "scheduler-candidate"

# -- environment variables ----------------------------------------------------
THROTTLE_VARIABLE = "SEAMLESS_WORKER_TRANSFORMATION_THROTTLE"
DEFAULT_TRANSFORMATION_THROTTLE = 3  # seed 002
# Status-file parameters as JSON, from the environment: all of them for a scheduler pod's preload (the operator
# sets it), the ones a launcher leaves out for the wrapper (a site sets it; the launcher's own win).
PARAMETERS_VARIABLE = "SEAMLESS_DASK_PARAMETERS"
CLUSTER_VARIABLE = "SEAMLESS_DASK_CLUSTER"  # a site's cluster string for the wrapper, over the launcher's
WORKER_NAME_VARIABLE = "DASK_WORKER_NAME"  # a worker pod's Dask name = its pod name (downward API)
HTTP_ROUTES_VARIABLE = "DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES"
TEMPORARY_DIRECTORY_VARIABLE = "DASK_TEMPORARY_DIRECTORY"
# Seconds a worker pod told to stop has to move its results (workers.retireTimeout; seamless_dask_runtime.drain).
RETIRE_BUDGET_VARIABLE = "DASK_WORKER_RETIRE_BUDGET"
# What `dask worker` needs after its retire budget: its own close gives the worker process 10 s to exit
# (cli/dask_worker.py, `nanny.close(timeout=10)`), then the interpreter stops. A pod's grace period is
# its budget plus this margin, so SIGKILL never comes first (seamless_dask_runtime.drain, the worker pod).
CLOSE_MARGIN = 15
# Set by the operator in pods besides the worker environment: a user's env entry of the same name is refused.
POD_VARIABLES = frozenset({WORKER_NAME_VARIABLE, PARAMETERS_VARIABLE, HTTP_ROUTES_VARIABLE,
                           TEMPORARY_DIRECTORY_VARIABLE, RETIRE_BUDGET_VARIABLE})


def scheduler_name(cluster: str) -> str:
    """The scheduler pod and its Service."""
    return f"{cluster}-scheduler"


def worker_name(cluster: str, index: int) -> str:
    """A worker pod, which is also its Dask worker name."""
    return f"{cluster}-worker-{index}"


def is_worker_of(cluster: str, name: str) -> bool:
    prefix = f"{cluster}-worker-"
    return name.startswith(prefix) and name[len(prefix):].isdigit()


def tls_secret_name(cluster: str) -> str:
    return f"{cluster}-tls"


# -- limits on the resource's name, so that every child name is valid ----------
# The tightest child is the scheduler Service NAME-scheduler: a DNS-1035 label (at most 63 characters,
# lower-case letter first, no dots). Worker pods NAME-worker-N and the Secret NAME-tls are DNS subdomains
# (253), and the label values holding NAME allow 63. The CRD's CEL rules (crds/src) are generated from these.
DNS_LABEL_MAX_LENGTH = 63
MAX_NAME_LENGTH = DNS_LABEL_MAX_LENGTH - len(scheduler_name(""))  # 53
NAME_PATTERN = "^[a-z]([-a-z0-9]*[a-z0-9])?$"  # DNS-1035 label


# -- how many workers one cluster may ask for -------------------------------------------------------------------
# maximum_jobs of the status file; workers.maximum, .replicas and .minimum of the CRD. One Dask scheduler serves a
# few thousand workers at most (Dask's own account of its scaling limits): 5000 is past what one cluster should
# have, and below it a typo (10**6) can no longer make a launcher or the operator create jobs or pods for ever. The
# operator's ceiling (the chart's maxWorkersPerCluster, 2000 by default: one scheduler's comfortable load) is lower.
MAX_WORKERS = 5000


# -- text that reaches a job script, a command line or an environment variable ----------------------------------
# Characters that end a line or hide text there: the C0 controls (NUL, tab, newline, carriage return, escape, ...),
# DEL, the C1 controls and Unicode's line and paragraph separators. Shell text (job_script_prologue, lines of shell
# by design) may hold tab and newline. As (first, last) code points; the CRD's `pattern`s are made from them.
CONTROL_CHARACTER_RANGES: tuple[tuple[int, int], ...] = ((0x00, 0x1F), (0x7F, 0x9F), (0x2028, 0x2029))
SHELL_TEXT_ALLOWED_CONTROLS = frozenset({"\t", "\n"})


def _re2_class(ranges: tuple[tuple[int, int], ...], allowed: frozenset[str] = frozenset()) -> str:
    """A character-class body in Go's RE2 syntax (the API server's ``pattern``), ``allowed`` left out."""
    codes = [code for first, last in ranges for code in range(first, last + 1) if chr(code) not in allowed]
    spans: list[list[int]] = []
    for code in codes:
        if spans and spans[-1][1] == code - 1:
            spans[-1][1] = code
        else:
            spans.append([code, code])
    return "".join(f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in spans)


CONTROL_CLASS = _re2_class(CONTROL_CHARACTER_RANGES)  # e.g. '^[^@CONTROL_CLASS@]*$' in crds/src
SHELL_CONTROL_CLASS = _re2_class(CONTROL_CHARACTER_RANGES, SHELL_TEXT_ALLOWED_CONTROLS)
