"""The Seamless-on-Kubernetes recipe: seamless-config's two files and the daskserver's environment (pure).

``kubectl sdc recipe --namespace NS --image IMAGE`` prints it; the README's
recipe section is its output for the example values (a unit test compares),
and the end-to-end test on real pods (``tests/e2e/test_seamless.py``) writes
the files and the environment from this same text.

seamless-config knows only local, slurm and oar clusters: the recipe declares a
``local`` cluster whose daskserver the site's environment turns into a
SeamlessDaskCluster (``SEAMLESS_DASK_CLUSTER``, ``SEAMLESS_DASK_PARAMETERS``).
The hashserver and the database stay on this machine, listening on an address
the pods reach; the wrapper reaches the scheduler by ``kubectl port-forward``.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from ...model.identity import CLUSTER_VARIABLE, PARAMETERS_VARIABLE

# The wrapper's Kubernetes backend and how it reaches the scheduler (seamless_dask_runtime.kubernetes;
# a unit test checks both against it: this module must run without the wrapper's dependencies).
K8S_CLUSTER_STRING = "seamless_dask_runtime.kubernetes::SeamlessDaskCluster"
ADDRESS_VARIABLE = "SEAMLESS_DASK_K8S_ADDRESS"
ADDRESS_PLACEHOLDER = "ADDRESS-THE-PODS-REACH"
CLUSTERS_FILE = "~/.seamless/clusters.yaml"
PROJECT_FILE = "seamless.yaml in the project directory"
ENVIRONMENT = "the daskserver's environment"
_MARK = "# ---- "


@dataclass(frozen=True)
class RecipeOptions:
    """What a site chooses; everything else in the recipe follows from it."""

    namespace: str
    image: str
    data_dir: str  # absolute: buffers and database live under it
    services_address: str = ADDRESS_PLACEHOLDER
    cluster: str = "kubernetes"
    project: str = "myproject"
    conda: str = "seamless"
    cores: int = 1
    memory: str = "2GB"
    maximum_jobs: int = 4
    interactive: bool = False
    port_start: int = 60000
    port_end: int = 60999


def _yaml_scalar(value: object) -> str:
    """JSON scalars are YAML scalars; a string is left bare where YAML reads it back as that string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value and all(c.isalnum() or c in "-_./" for c in value) \
            and not value[0].isdigit() and value.lower() not in ("true", "false", "null", "yes", "no", "on", "off"):
        return value
    return json.dumps(value)


def _block(indent: int, items: list[tuple[str, object, str]]) -> list[str]:
    """``key: value  # comment`` lines of a YAML mapping."""
    pad = " " * indent
    return [f"{pad}{key}: {_yaml_scalar(value)}" + (f"  # {comment}" if comment else "")
            for key, value, comment in items]


def clusters_yaml(o: RecipeOptions) -> str:
    ports: list[tuple[str, object, str]] = [("port_start", o.port_start, ""), ("port_end", o.port_end, "")]
    services = [("conda", o.conda, ""), ("network_interface", o.services_address, "an address the pods reach"),
                *ports]
    queue: list[tuple[str, object, str]] = [
        ("conda", o.conda, ""), ("cores", o.cores, "CPUs of each worker pod"),
        ("memory", o.memory, "memory of each worker pod"), ("maximum_jobs", o.maximum_jobs, "most worker pods"),
        ("walltime", "01:00:00", ""), ("unknown_task_duration", "1m", ""), ("target_duration", "10m", "")]
    if o.interactive:
        queue.append(("interactive", True, "keep one worker pod while the daskserver runs"))
    return "\n".join([
        f"local_cluster: {o.cluster}  # this machine runs the services, without SSH",
        f"{o.cluster}:",
        "  type: local  # the daskserver's environment makes it a SeamlessDaskCluster",
        f"  workers: {o.cores}",
        "  frontends:",
        "    - hostname: localhost",
        "      hashserver:  # the workers in the pods fetch and store buffers here",
        *_block(8, [("bufferdir", o.data_dir + "/buffers", ""), *services]),
        "      database:  # ... and results here",
        *_block(8, [("database_dir", o.data_dir + "/database", ""), *services]),
        "      daskserver:",
        *_block(8, [("network_interface", "127.0.0.1", "the wrapper's kubectl port-forward listens here"),
                    *ports]),
        "  queues:",
        "    default:",
        *_block(6, queue),
        "  default_queue: default",
    ]) + "\n"


def project_yaml(o: RecipeOptions) -> str:
    return "\n".join([f"- cluster: {o.cluster}", f"- project: {_yaml_scalar(o.project)}", "- execution: remote",
                      "- remote: daskserver"]) + "\n"


def environment(o: RecipeOptions) -> dict[str, str]:
    """What the daskserver's ``seamless-dask-wrapper`` must find in its environment."""
    return {
        CLUSTER_VARIABLE: K8S_CLUSTER_STRING,
        PARAMETERS_VARIABLE: json.dumps({"namespace": o.namespace, "image": o.image}),
        ADDRESS_VARIABLE: "port-forward",
    }


def environment_lines(o: RecipeOptions) -> str:
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in environment(o).items())


def recipe_text(o: RecipeOptions) -> str:
    """The whole recipe, as ``kubectl sdc recipe`` prints it."""
    address_note = ("# Replace ADDRESS-THE-PODS-REACH with an address of this machine that pods reach "
                    "(--services-address).\n" if o.services_address == ADDRESS_PLACEHOLDER else "")
    return (
        f"# Seamless on Kubernetes: seamless.config.init() runs transformations in the worker pods of a\n"
        f"# SeamlessDaskCluster in namespace {o.namespace}, image {o.image}.\n"
        "# Needs: the operator installed (helm); the image built with --build-arg SEAMLESS=true and the same\n"
        "# distributed and Seamless versions as this machine; kubectl on PATH and a kubeconfig context that\n"
        f"# may create SeamlessDaskClusters in {o.namespace}.\n"
        f"{address_note}"
        f"{_MARK}{CLUSTERS_FILE}\n{clusters_yaml(o)}"
        f"{_MARK}{PROJECT_FILE}\n{project_yaml(o)}"
        f"{_MARK}{ENVIRONMENT}: export it before seamless.config.init(), or put it in an activation\n"
        f"# script of the conda environment {o.conda} ($CONDA_PREFIX/etc/conda/activate.d/)\n"
        f"{environment_lines(o)}"
    )


def recipe_sections(text: str) -> dict[str, str]:
    """The recipe's parts by title (:data:`CLUSTERS_FILE`, :data:`PROJECT_FILE`, :data:`ENVIRONMENT`)."""
    sections: dict[str, str] = {}
    title = None
    for line in text.splitlines(keepends=True):
        if line.startswith(_MARK):
            title = next(t for t in (CLUSTERS_FILE, PROJECT_FILE, ENVIRONMENT) if line[len(_MARK):].startswith(t))
            sections[title] = ""
        elif title is not None:
            sections[title] += line
    return sections
