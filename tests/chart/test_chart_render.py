"""The chart lints, renders, validates against the official schemas, and carries the CRD of crds/."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from ._helm import (
    CHART,
    CLUSTER_WIDE,
    CRD,
    NAMESPACED,
    by_kind,
    hook_test_pod,
    is_hook,
    one,
    operator_container,
    operator_deployment,
    render,
    run,
    set_args,
)

#: Kubernetes version the rendered objects are validated for (kubernetes-validate's schemas).
K8S_VERSION = kubernetes_validate.latest_version()

MODES = {"cluster-wide": CLUSTER_WIDE, "namespaced": NAMESPACED}
EVERYTHING_ON = {
    "watchNamespaces": ["a", "b"],
    "verbose": True,
    "monitoring": {"enabled": True, "labels": {"release": "prometheus"}},
    "imagePullSecrets": [{"name": "regcred"}],
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "dask", "effect": "NoSchedule"}],
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}},
    "podAnnotations": {"example.org/a": "b"},
    "podLabels": {"team": "dask"},
    "priorityClassName": "system-cluster-critical",
    "extraEnv": [{"name": "EXTRA", "value": "1"}],
    "image": {"repository": "registry.example/sdo", "tag": "", "pullPolicy": "Always",
              "digest": "sha256:" + "0" * 64},
}


@pytest.mark.parametrize("values", [CLUSTER_WIDE, NAMESPACED, EVERYTHING_ON],
                         ids=["cluster-wide", "namespaced", "everything-on"])
def test_helm_lint_strict(helm: str, values: dict) -> None:
    proc = run([helm, "lint", "--strict", str(CHART), *set_args(values)])
    assert "0 chart(s) failed" in proc.stdout, proc.stdout


@pytest.mark.parametrize("values", [CLUSTER_WIDE, NAMESPACED, EVERYTHING_ON],
                         ids=["cluster-wide", "namespaced", "everything-on"])
def test_rendered_builtin_objects_validate_strictly(helm: str, values: dict) -> None:
    objects = render(helm, values, include_crds=True)
    checked = 0
    for obj in objects:
        if obj["apiVersion"] == "monitoring.coreos.com/v1":
            continue  # not a built-in kind: no official schema
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        checked += 1
    kinds = {o["kind"] for o in objects}
    assert {"CustomResourceDefinition", "Deployment", "ServiceAccount", "Service", "Pod"} <= kinds
    assert checked >= 8


def test_crd_in_chart_is_the_one_of_crds_dir(helm: str, tmp_path: Path) -> None:
    link = CHART / "crds" / "seamlessdaskclusters.yaml"
    # A symlink into crds/: one source of truth, no copy that could drift.
    assert link.is_symlink(), "the chart's CRD must be a symlink to crds/seamlessdaskclusters.yaml"
    assert link.resolve() == CRD.resolve()
    # helm follows it when rendering ...
    crds = by_kind(render(helm, include_crds=True), "CustomResourceDefinition")
    assert crds == [yaml.safe_load(CRD.read_text())]
    # ... and when packaging (the .tgz carries the file's bytes, not a link).
    run([helm, "package", str(CHART), "--destination", str(tmp_path)])
    (package,) = tmp_path.glob("seamless-dask-operator-*.tgz")
    with tarfile.open(package) as tar:
        member = tar.getmember("seamless-dask-operator/crds/seamlessdaskclusters.yaml")
        assert member.isfile()
        assert tar.extractfile(member).read() == CRD.read_bytes()


def test_chart_metadata(helm: str) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == "0.1.0"
    default_image = operator_container(render(helm))["image"]
    assert default_image == "ghcr.io/seamless-dask/seamless-dask-operator:0.1.0"


@pytest.mark.parametrize("mode", MODES)
def test_operator_deployment_args_env_and_probes(helm: str, mode: str) -> None:
    values = MODES[mode]
    objects = render(helm, values, namespace="ops")
    deployment = operator_deployment(objects)
    # Two replicas, one acting (the Lease's holder, issue 22); a rollout adds one before it removes one.
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SEAMLESS_DASK_OPERATOR_LEASE"]["value"] == deployment["metadata"]["name"]
    assert env["SEAMLESS_DASK_OPERATOR_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 60
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"]
    container = operator_container(objects)
    assert container["command"] == ["seamless-dask-operator"]
    namespaces = values.get("watchNamespaces", [])
    assert [a for a in container["args"] if a.startswith("--namespace")] == [f"--namespace={n}" for n in namespaces]
    assert "--liveness-port=8080" in container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SEAMLESS_DASK_OPERATOR_NAMESPACES"] == ",".join(namespaces)
    assert env["SEAMLESS_DASK_OPERATOR_HEALTH_PORT"] == "8080"
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
        port = container[probe]["httpGet"]["port"]
        assert port == "http-health"
    assert {"name": "http-health", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    # The operator's CLI accepts exactly these arguments.
    from seamless_dask_operator.main import build_parser

    parsed = build_parser().parse_args(container["args"])
    assert parsed.namespace == namespaces
    assert parsed.liveness_port == 8080


def test_values_are_wired(helm: str) -> None:
    objects = render(helm, EVERYTHING_ON)
    container = operator_container(objects)
    pod = operator_deployment(objects)["spec"]["template"]
    assert container["image"] == "registry.example/sdo@sha256:" + "0" * 64
    assert container["imagePullPolicy"] == "Always"
    assert "--verbose" in container["args"]
    assert {"name": "EXTRA", "value": "1"} in container["env"]
    assert pod["metadata"]["labels"]["team"] == "dask"
    assert pod["metadata"]["annotations"] == {"example.org/a": "b"}
    spec = pod["spec"]
    for key in ("nodeSelector", "tolerations", "affinity", "imagePullSecrets", "priorityClassName"):
        assert spec[key] == EVERYTHING_ON[key], key
    tag = render(helm, {"image": {"repository": "r/sdo", "tag": "dev", "pullPolicy": "Never"}})
    assert operator_container(tag)["image"] == "r/sdo:dev"


def test_pod_policy_and_operator_identity_reach_the_operator(helm: str) -> None:
    from seamless_dask_operator.pod_policy import DEFAULT_POLICY, PodPolicy

    def env_of(values: dict) -> dict[str, dict]:
        return {e["name"]: e for e in operator_container(render(helm, values))["env"]}

    env = env_of({})
    assert PodPolicy.from_json(env["SEAMLESS_DASK_OPERATOR_POD_POLICY"]["value"]) == DEFAULT_POLICY, \
        "the chart's defaults are the operator's defaults"
    allowed = env_of({"podPolicy": {"allowSecrets": True, "allowedServiceAccounts": ["reader"]}})
    policy = PodPolicy.from_json(allowed["SEAMLESS_DASK_OPERATOR_POD_POLICY"]["value"])
    assert policy.allow_secrets and policy.allowed_service_accounts == {"reader"}
    # The schedulers' NetworkPolicy lets in exactly the operator's pods: their namespace and selector labels.
    assert env["SEAMLESS_DASK_OPERATOR_POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    labels = json.loads(env["SEAMLESS_DASK_OPERATOR_POD_LABELS"]["value"])
    pod_labels = operator_deployment(render(helm))["spec"]["template"]["metadata"]["labels"]
    assert labels and labels.items() <= pod_labels.items()


def test_runtime_image_reaches_the_operator(helm: str) -> None:
    """runtimeImage -> SEAMLESS_DASK_OPERATOR_DEFAULT_IMAGE -> the operator's default for an unset spec.image."""
    from seamless_dask_operator.resource import parse_spec
    from seamless_dask_operator.settings import OperatorSettings

    from seamless_dask_runtime.model.identity import DEFAULT_IMAGE

    def default_image(values: dict) -> str:
        env = {e["name"]: e["value"] for e in operator_container(render(helm, values))["env"] if "value" in e}
        settings = OperatorSettings.from_environment(env)
        assert settings.default_image == env["SEAMLESS_DASK_OPERATOR_DEFAULT_IMAGE"]
        return parse_spec({}, defaults=settings.defaults).options.image

    assert default_image({}) == DEFAULT_IMAGE == "ghcr.io/seamless-dask/seamless-dask-runtime:0.1.0"
    assert default_image({"runtimeImage": {"repository": "seamless-dask-runtime", "tag": "dev"}}) \
        == "seamless-dask-runtime:dev"
    digest = "sha256:" + "1" * 64
    assert default_image({"runtimeImage": {"repository": "r/rt", "tag": "x", "digest": digest}}) == f"r/rt@{digest}"
    assert OperatorSettings.from_environment({}).default_image == DEFAULT_IMAGE  # outside the chart


def test_notes_name_the_runtime_image(helm: str) -> None:
    proc = run([helm, "install", "sdo", str(CHART), "--dry-run=client", "--namespace", "ops",
                *set_args({"runtimeImage": {"repository": "seamless-dask-runtime", "tag": "dev"}})])
    assert "seamless-dask-runtime:dev" in proc.stdout.split("NOTES:", 1)[1]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"bogus": 1}, "bogus"),
        ({"watchNamespaces": ["Not_A_Namespace"]}, "watchNamespaces"),
        ({"image": {"repository": "x", "pullPolicy": "Sometimes"}}, "pullPolicy"),
        ({"healthPort": 0}, "healthPort"),
        ({"monitoring": {"enabled": "yes"}}, "monitoring"),
        ({"resources": {"requests": {"cpu": "lots"}}}, "cpu"),
        ({"podPolicy": {"allowSecret": True}}, "allowSecret"),
        ({"podPolicy": {"allowedServiceTypes": ["ExternalName"]}}, "allowedServiceTypes"),
        ({"runtimeImage": {"repository": ""}}, "runtimeImage"),
        ({"runtimeImage": {"repository": "x", "pullPolicy": "Never"}}, "pullPolicy"),
    ],
)
def test_values_schema_refuses_bad_values(helm: str, values: dict, message: str) -> None:
    proc = run([helm, "template", "x", str(CHART), *set_args(values)], check=False)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_values_schema_is_valid_json_and_covers_every_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert schema["additionalProperties"] is False
    assert set(values) == set(schema["properties"]), "every top-level value is described by the schema"


def test_helm_test_hook_uses_operator_image_and_service(helm: str) -> None:
    objects = render(helm, NAMESPACED, namespace="ops")
    pod = hook_test_pod(objects)
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    assert container["image"] == operator_container(objects)["image"]
    env = {e["name"]: e["value"] for e in container["env"]}
    service = one(objects, "Service")
    assert env["HEALTHZ_URL"] == f"http://{service['metadata']['name']}.ops.svc:8080/healthz"
    assert env["CHECK_NAMESPACE"] == "team-a"  # the operator's SA may list there
    assert service["spec"]["ports"][0]["targetPort"] == "http-health"
    assert service["spec"]["selector"].items() <= (
        operator_deployment(objects)["spec"]["template"]["metadata"]["labels"].items()
    )
    # The script compiles (it is given to `python -c`).
    compile(container["args"][0], "helm-test", "exec")


@pytest.mark.parametrize("mode", MODES)
def test_notes_tell_how_to_start(helm: str, mode: str) -> None:
    proc = run([helm, "install", "sdo", str(CHART), "--dry-run=client", "--namespace", "ops",
                *set_args(MODES[mode])])
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert "apply -f examples/minimal.yaml" in notes
    assert "get sdc" in notes
    assert "port-forward svc/minimal-scheduler 8787" in notes


def test_no_object_without_release_labels(helm: str) -> None:
    for obj in render(helm, EVERYTHING_ON):
        labels = obj["metadata"].get("labels") or {}
        assert labels.get("app.kubernetes.io/managed-by") == "Helm", obj["metadata"]["name"]
        assert not is_hook(obj) or obj["kind"] == "Pod"
