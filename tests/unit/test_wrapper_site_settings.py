"""The site's environment completes what a launcher cannot say (seamless-config has no Kubernetes cluster type)."""

from __future__ import annotations

import pytest

from seamless_dask_runtime.launcher.wrapper.cli import CLUSTER_VARIABLE, PARAMETERS_VARIABLE, site_settings

K8S = "seamless_dask_runtime.kubernetes::SeamlessDaskCluster"
LAUNCHER = {"cores": 1, "memory": "1GB", "maximum_jobs": 2}


@pytest.mark.parametrize(("environ", "cluster", "parameters"), [
    ({}, "distributed::LocalCluster", LAUNCHER),
    ({CLUSTER_VARIABLE: K8S}, K8S, LAUNCHER),
    ({CLUSTER_VARIABLE: ""}, "distributed::LocalCluster", LAUNCHER),
    ({PARAMETERS_VARIABLE: '{"namespace": "team-a", "image": "rt:1"}'}, "distributed::LocalCluster",
     {**LAUNCHER, "namespace": "team-a", "image": "rt:1"}),
    # The launcher's own parameters win over the site's.
    ({CLUSTER_VARIABLE: K8S, PARAMETERS_VARIABLE: '{"cores": 4, "image": "rt:1"}'}, K8S, {**LAUNCHER, "image": "rt:1"}),
])
def test_site_settings(environ: dict[str, str], cluster: str, parameters: dict) -> None:
    assert site_settings("distributed::LocalCluster", LAUNCHER, environ) == (cluster, parameters)


@pytest.mark.parametrize(("text", "words"), [
    ("{namespace: team-a}", "invalid JSON"),
    ('["team-a"]', "a JSON object of parameters is needed, not list"),
])
def test_bad_site_parameters_name_the_variable_and_the_fix(text: str, words: str) -> None:
    with pytest.raises(ValueError) as error:
        site_settings("distributed::LocalCluster", LAUNCHER, {PARAMETERS_VARIABLE: text})
    assert str(error.value).startswith(PARAMETERS_VARIABLE) and words in str(error.value), error.value
    assert '"namespace"' in str(error.value)
