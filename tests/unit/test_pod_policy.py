"""The pod policy: a user allowed only SeamlessDaskClusters gets no pod they could not have made themselves.

Every hostile spec of issue 14 is refused as a spec error naming the field and
the chart value that would allow it; what Seamless clusters need passes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from seamless_dask_operator.pod_policy import DEFAULT_POLICY, PodPolicy
from seamless_dask_operator.resource import parse_spec

from seamless_dask_runtime.model.identity import THROTTLE_VARIABLE
from seamless_dask_runtime.model.parameters import ParameterError

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))


def refused(spec: dict[str, Any], policy: PodPolicy = DEFAULT_POLICY) -> dict[str, str]:
    with pytest.raises(ParameterError) as caught:
        parse_spec(spec, policy)
    return {error.field: error.message for error in caught.value.errors}


HOSTILE = [
    ({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}, "spec.volumes[0].hostPath", "allowedVolumeTypes"),
    ({"volumes": [{"name": "sock", "hostPath": {"path": "/run/containerd/containerd.sock"}}]},
     "spec.volumes[0].hostPath", "allowedVolumeTypes"),
    ({"volumes": [{"name": "s", "secret": {"secretName": "db-password"}}]}, "spec.volumes[0].secret", "allowSecrets"),
    ({"volumes": [{"name": "p", "projected": {"sources": [{"secret": {"name": "db-password"}}]}}]},
     "spec.volumes[0].projected.sources[0].secret", "allowSecrets"),
    ({"volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}]},
     "spec.volumes[0].projected.sources[0].serviceAccountToken", "allowedVolumeTypes"),
    ({"volumes": [{"name": "n", "nfs": {"server": "10.0.0.1", "path": "/"}}]}, "spec.volumes[0].nfs",
     "allowedVolumeTypes"),
    ({"workers": {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]}},
     "spec.workers.env[0].valueFrom.secretKeyRef", "allowSecrets"),
    ({"scheduler": {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]}},
     "spec.scheduler.env[0].valueFrom.secretKeyRef", "allowSecrets"),
    ({"serviceAccountName": "deployer"}, "spec.serviceAccountName", "allowedServiceAccounts"),
    ({"scheduler": {"serviceType": "LoadBalancer"}}, "spec.scheduler.serviceType", "allowedServiceTypes"),
    ({"scheduler": {"serviceType": "NodePort"}}, "spec.scheduler.serviceType", "allowedServiceTypes"),
    ({"podAnnotations": {"container.apparmor.security.beta.kubernetes.io/worker": "unconfined"}},
     "spec.podAnnotations['container.apparmor.security.beta.kubernetes.io/worker']", "allowSecurityAnnotations"),
    ({"podLabels": {"app": "web"}}, "spec.podLabels['app']", "allowedPodLabels"),
]


@pytest.mark.parametrize(("spec", "field", "chart_value"), HOSTILE, ids=[h[1] for h in HOSTILE])
def test_default_policy_refuses_what_the_creator_could_not_have(spec: dict[str, Any], field: str,
                                                                 chart_value: str) -> None:
    errors = refused(spec)
    assert field in errors, errors
    assert f"podPolicy.{chart_value}" in errors[field], "the message names the chart value an admin can set"


def test_an_admin_can_allow_each_of_them() -> None:
    policy = PodPolicy.from_json(
        '{"allowedVolumeTypes": ["emptyDir", "hostPath", "nfs", "projected", "serviceAccountToken"],'
        ' "allowSecrets": true, "allowedServiceAccounts": ["deployer"],'
        ' "allowedServiceTypes": ["ClusterIP", "LoadBalancer", "NodePort"], "allowSecurityAnnotations": true,'
        ' "allowedPodLabels": ["app"]}')
    for spec, _field, _value in HOSTILE:
        parse_spec(spec, policy)


def test_an_allowed_service_account_is_that_one_only() -> None:
    policy = PodPolicy(allowed_service_accounts=frozenset({"reader"}))
    parse_spec({"serviceAccountName": "reader"}, policy)
    assert "spec.serviceAccountName" in refused({"serviceAccountName": "deployer"}, policy)


def test_every_refusal_of_one_spec_is_reported_at_once() -> None:
    errors = refused({"volumes": [{"name": "root", "hostPath": {"path": "/"}}],
                      "serviceAccountName": "deployer", "scheduler": {"serviceType": "LoadBalancer"}})
    assert {"spec.volumes[0].hostPath", "spec.serviceAccountName", "spec.scheduler.serviceType"} <= set(errors)


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.stem for e in EXAMPLES])
def test_the_examples_need_nothing_the_default_policy_refuses(example: Path) -> None:
    for document in yaml.safe_load_all(example.read_text()):
        if document and document.get("kind") == "SeamlessDaskCluster":
            parse_spec(document["spec"])


def test_what_seamless_clusters_use_passes() -> None:
    parse_spec({"volumes": [{"name": "buffers", "persistentVolumeClaim": {"claimName": "buffers"}},
                            {"name": "conf", "configMap": {"name": "seamless"}},
                            {"name": "scratch", "emptyDir": {}},
                            {"name": "both", "projected": {"sources": [{"configMap": {"name": "a"}},
                                                                       {"downwardAPI": {"items": []}}]}}],
                "workers": {"env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "a", "key": "b"}}}]}})


def test_pod_labels_only_by_the_admins_keys() -> None:
    """A label is a selector's match (issue 21): by default none of the user's; the admin lists keys, or "*"."""
    teams = PodPolicy.from_json('{"allowedPodLabels": ["team"]}')
    parse_spec({"podLabels": {"team": "a"}}, teams)
    assert set(refused({"podLabels": {"team": "a", "app": "web"}}, teams)) == {"spec.podLabels['app']"}
    parse_spec({"podLabels": {"app": "web"}}, PodPolicy.from_json('{"allowedPodLabels": ["*"]}'))


def test_without_configmaps_in_the_policy_no_configmap_reaches_a_pod() -> None:
    """An admin who grants SeamlessDaskClusters alone lists no configMap: no volume, projection or env value."""
    policy = PodPolicy.from_json('{"allowedVolumeTypes": ["emptyDir", "downwardAPI", "projected"]}')
    errors = refused({"volumes": [{"name": "c", "configMap": {"name": "other-app"}},
                                  {"name": "p", "projected": {"sources": [{"configMap": {"name": "other-app"}}]}}],
                      "workers": {"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "o", "key": "k"}}}]}},
                     policy)
    assert set(errors) == {"spec.volumes[0].configMap", "spec.volumes[1].projected.sources[0].configMap",
                           "spec.workers.env[0].valueFrom.configMapKeyRef"}
    assert all("podPolicy.allowedVolumeTypes" in message for message in errors.values())


def test_a_policy_with_a_typo_is_refused_not_ignored() -> None:
    with pytest.raises(ValueError, match="allowSecret"):
        PodPolicy.from_json('{"allowSecret": true}')


def test_the_operators_own_variables_cannot_be_set_twice() -> None:
    errors = refused({"workers": {"env": [{"name": THROTTLE_VARIABLE, "value": "9"}]}})
    assert "transformationThrottle" in errors["spec.workers.env[0].name"]
    errors = refused({"scheduler": {"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}})
    assert "twice" in errors["spec.scheduler.env[1].name"]
    errors = refused({"workers": {"env": [{"name": "DASK_WORKER_NAME", "value": "me"}]}})
    assert "spec.workers.env[0].name" in errors
