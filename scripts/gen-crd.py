#!/usr/bin/env python3
"""Generate crds/seamlessdaskclusters.yaml from its source and the real Kubernetes schemas.

    scripts/gen-crd.py            # write crds/seamlessdaskclusters.yaml
    scripts/gen-crd.py --check    # exit 1 (and say why) when the committed file is stale

The source, ``crds/src/seamlessdaskclusters.src.yaml``, is the CRD as we write
it: our fields, defaults, CEL rules, descriptions. Where a field is a Kubernetes
type (resources, env, nodeSelector, tolerations, affinity, volumes, volumeMounts
of core/v1; the scheduler's allowFrom, networking/v1 NetworkPolicyPeers) it holds
a marker, ``x-embed: io.k8s.api.core.v1.PodSpec.volumes``, and this script puts
there the schema of that field as a real kube-apiserver publishes it
(``/openapi/v3/api/v1``, ``/openapi/v3/apis/networking.k8s.io/v1``), so the API
server validates those fields at admission and ``kubectl explain`` describes
them. One source per fact: our fields live in the source, Kubernetes' in
Kubernetes.

The API server is ``$KUBECONFIG`` (``--kubeconfig``), or, when
``SDO_KUBE_UP=../shared/kube/up.sh`` is set, one this script starts and stops.
The generated file records the Kubernetes version it came from.

Made structural, as a CRD requires (``structural()``):

* every ``$ref`` resolved (``allOf: [$ref]`` too), keeping the field's own description;
* ``default`` dropped: those are Go zero values (``name: ""``), which as CRD
  defaults would fill in what the user left out and hide a missing field;
* an optional field with an enum also takes ``""``: in Go an unset string is
  ``""``, so the API server accepts it in a pod (a toleration's ``effect: ""``
  means every effect), and the CRD must never refuse what a pod accepts;
* Quantity becomes ``x-kubernetes-int-or-string`` with a pattern written from the
  grammar in Quantity's description (``4g``, ``54000mb``, ``4 kiB`` are refused).
  A quantity given as a non-integer JSON number (``cpu: 0.5``) is refused too: a
  structural schema cannot say "number or string"; write ``"0.5"`` or ``500m``;
* IntOrString becomes ``x-kubernetes-int-or-string``;
* kept: type, properties, items, additionalProperties, required, enum, format,
  ``x-kubernetes-list-type``, ``x-kubernetes-list-map-keys``, ``x-kubernetes-map-type``;
  dropped (no place in a CRD): ``x-kubernetes-patch-*``, ``x-kubernetes-unions``.

Size (``kubectl apply`` of crds/, client side, stores the whole object as JSON in
the ``last-applied-configuration`` annotation, at most 262144 bytes of annotations):
measured from Kubernetes v1.36.2 with every description kept, 191011 bytes of
JSON (73 % of the limit; the YAML file is 324 KB). Nothing is trimmed: every
volume source stays (the operator's pod policy, not the schema, decides which
types users may have; an admin may allow nfs or csi), and ``kubectl explain``
describes every level. ``main()`` refuses to write a CRD over the limit. If a
later Kubernetes grows past it, drop the descriptions more than one field below
an embedded field first (measured before allowFrom was embedded: 66 KB with
only those kept, 49 KB with none):
they are the longest part and the Kubernetes reference has them.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "operator")]  # the runtime and the operator, also when not installed
SOURCE = REPO / "crds" / "src" / "seamlessdaskclusters.src.yaml"
OUTPUT = REPO / "crds" / "seamlessdaskclusters.yaml"
MARKER = "x-embed"
LAST_APPLIED_LIMIT = 262144  # bytes of all annotations of an object (kubectl apply's client-side copy)

QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
# Quantity's grammar (its OpenAPI description): sign? number suffix?, suffix = binarySI | decimalSI |
# decimal exponent; the parser also takes n and u (nano, micro) as decimalSI.
_NUMBER = r"([0-9]+(\.[0-9]*)?|\.[0-9]+)"
QUANTITY_PATTERN = rf"^[+-]?{_NUMBER}([KMGTPE]i|[numkMGTPE]|[eE][+-]?{_NUMBER})?$"
# Keys a CRD's JSONSchemaProps accepts that we copy from Kubernetes' schemas.
KEPT = ("description", "type", "format", "enum", "required", "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys", "x-kubernetes-map-type")


class GenerationError(RuntimeError):
    """The source or the OpenAPI cannot make a valid CRD; the message says where."""


# -- pure: source + OpenAPI schemas -> CRD ----------------------------------------------------------------------

def fill_identity(source_text: str) -> str:
    """``@NAME@`` in the source becomes the constant NAME of seamless_dask_runtime/model/identity.py."""
    from seamless_dask_runtime.model import identity

    def constant(match: re.Match[str]) -> str:
        value = getattr(identity, match.group(1), None)
        if not isinstance(value, (str, int)):
            raise GenerationError(f"@{match.group(1)}@: seamless_dask_runtime.model.identity has no such constant")
        return str(value)

    return re.sub(r"@([A-Z][A-Z0-9_]*)@", constant, source_text)


def generate(source: Mapping[str, Any], schemas: Mapping[str, Any]) -> dict[str, Any]:
    """The CRD: ``source`` with every ``x-embed`` marker replaced by the structural Kubernetes schema."""
    crd = copy.deepcopy(dict(source))
    for version in crd["spec"]["versions"]:
        version["schema"]["openAPIV3Schema"] = _embed_all(version["schema"]["openAPIV3Schema"], schemas, "")
    return crd


def _embed_all(node: Any, schemas: Mapping[str, Any], path: str) -> Any:
    if isinstance(node, list):
        return [_embed_all(item, schemas, f"{path}[{i}]") for i, item in enumerate(node)]
    if not isinstance(node, dict):
        return node
    if MARKER in node:
        return embedded_field(node, schemas, path)
    return {key: _embed_all(value, schemas, f"{path}.{key}") for key, value in node.items()}


def embedded_field(marker: Mapping[str, Any], schemas: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    """The schema of ``TYPE.field`` (``marker[x-embed]``), its description replaced by ``marker``'s own."""
    reference = marker[MARKER]
    type_name, _, field = str(reference).rpartition(".")
    owner = schemas.get(type_name)
    if owner is None or field not in owner.get("properties", {}):
        raise GenerationError(f"{path}: {MARKER}: {reference!r} names no field of the API server's OpenAPI")
    unknown = set(marker) - {MARKER, "description"}
    if unknown:
        raise GenerationError(f"{path}: beside {MARKER} only description is allowed, not {sorted(unknown)}")
    schema = structural(owner["properties"][field], schemas)
    if "description" in marker:
        schema["description"] = " ".join(str(marker["description"]).split())
    return schema


def structural(schema: Mapping[str, Any], schemas: Mapping[str, Any], seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """``schema`` with references resolved and only what a CRD's structural schema allows."""
    schema = dict(schema)
    reference = _reference(schema)
    description = schema.get("description")
    out: dict[str, Any]
    if reference is not None:
        if reference in seen:
            raise GenerationError(f"recursive type {reference}: a CRD schema cannot hold it")
        if reference == QUANTITY:
            out = {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}],
                   "pattern": QUANTITY_PATTERN}
        elif reference == INT_OR_STRING:
            out = {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}
        else:
            out = structural(schemas[reference], schemas, (*seen, reference))
        if description is not None:  # the field's own words say more than its type's
            out["description"] = description
        return out
    out = {key: copy.deepcopy(schema[key]) for key in KEPT if key in schema}
    if out.get("format") == "int-or-string":
        del out["format"]
    if "properties" in schema:
        out["properties"] = {name: structural(prop, schemas, seen)
                             for name, prop in schema["properties"].items()}
        for name, prop in out["properties"].items():
            if "enum" in prop and "" not in prop["enum"] and name not in out.get("required", ()):
                # An optional Go string holds "" when unset, so the API server takes "" for a pod (a toleration's
                # effect: "" means every effect): the CRD must not refuse what a pod accepts.
                prop["enum"] = ["", *prop["enum"]]
    if "items" in schema:
        out["items"] = structural(schema["items"], schemas, seen)
    if isinstance(schema.get("additionalProperties"), Mapping):
        out["additionalProperties"] = structural(schema["additionalProperties"], schemas, seen)
    if "type" not in out and "x-kubernetes-int-or-string" not in out:
        raise GenerationError(f"a schema without a type: {json.dumps(schema)[:200]}")
    if out.get("x-kubernetes-list-type") == "map":
        missing = set(out.get("x-kubernetes-list-map-keys", ())) - set(out.get("items", {}).get("required", ()))
        if missing:  # a CRD's list-map keys must be required (we keep no defaults)
            out["x-kubernetes-list-type"] = "atomic"
            out.pop("x-kubernetes-list-map-keys", None)
    return out


def _reference(schema: Mapping[str, Any]) -> str | None:
    ref = schema.get("$ref")
    if ref is None and len(schema.get("allOf", ())) == 1:
        ref = schema["allOf"][0].get("$ref")
    return None if ref is None else str(ref).rsplit("/", 1)[-1]


def render(crd: Mapping[str, Any], kubernetes_version: str) -> str:
    """The generated file's text: a header saying where it comes from, then the CRD."""
    header = (f"# GENERATED by scripts/gen-crd.py from crds/src/{SOURCE.name} and the OpenAPI v3 of\n"
              f"# Kubernetes {kubernetes_version}. Do not edit: edit the source and run the script.\n"
              "# This is the CRD (the Helm chart reads it through a symlink); apply it with kubectl or helm.\n")
    return header + yaml.dump(dict(crd), Dumper=_NoAliases, sort_keys=False, width=120, allow_unicode=True)


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def recorded_version(text: str) -> str | None:
    """The Kubernetes version a generated file says it came from."""
    match = re.search(r"^# Kubernetes (\S+)\. Do not edit", text, re.MULTILINE)
    return match.group(1) if match else None


def last_applied_size(crd: Mapping[str, Any]) -> int:
    """Bytes of the annotation ``kubectl apply`` (client side) would store: the object as compact JSON."""
    return len(json.dumps(crd, separators=(",", ":"), ensure_ascii=False).encode())


# -- I/O: the API server ---------------------------------------------------------------------------------------

def openapi_paths(source: Any) -> list[str]:
    """The OpenAPI v3 documents holding the types the markers name (``io.k8s.api.GROUP.VERSION.Type``)."""
    paths = set()
    for reference in _markers(source):
        parts = reference.split(".")
        if parts[:3] != ["io", "k8s", "api"] or len(parts) < 6:
            raise GenerationError(f"{MARKER}: {reference!r} is not io.k8s.api.GROUP.VERSION.Type.field")
        group, version = parts[3], parts[4]
        paths.add(f"/openapi/v3/api/{version}" if group == "core" else f"/openapi/v3/apis/{group}.k8s.io/{version}")
    return sorted(paths)


def _markers(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if MARKER in node:
            yield str(node[MARKER])
        for value in node.values():
            yield from _markers(value)
    elif isinstance(node, list):
        for item in node:
            yield from _markers(item)


def fetch_openapi(kubeconfig: str, paths: list[str]) -> tuple[dict[str, Any], str]:
    """The component schemas of the OpenAPI documents ``paths`` and the gitVersion of the API server."""
    import kubernetes

    api = kubernetes.config.new_client_from_config(config_file=kubeconfig)
    try:
        def get(path: str) -> Any:
            method, url, headers, body, _ = api.param_serialize("GET", path, auth_settings=["BearerToken"])
            response = api.call_api(method, url, header_params=headers, body=body, _request_timeout=60)
            response.read()
            return json.loads(response.data)

        schemas: dict[str, Any] = {}
        for path in paths:
            schemas.update(get(path)["components"]["schemas"])
        version = get("/version")["gitVersion"]
    finally:
        api.close()
    return schemas, version


@contextmanager
def api_server(kubeconfig: str | None) -> Iterator[str]:
    """A kubeconfig: the one given, else $KUBECONFIG, else a control plane of $SDO_KUBE_UP (stopped after)."""
    given = kubeconfig or os.environ.get("KUBECONFIG", "").strip()
    if given:
        yield given
        return
    up = os.environ.get("SDO_KUBE_UP", "").strip()
    if not up:
        raise GenerationError("no API server: set KUBECONFIG, pass --kubeconfig, or set "
                              "SDO_KUBE_UP=../shared/kube/up.sh to start one")
    with tempfile.TemporaryDirectory(prefix="gen-crd-") as tmp:
        workdir = Path(tmp) / "kube"
        subprocess.run(["bash", up, str(workdir)], check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        try:
            yield str(workdir / "kubeconfig")
        finally:
            subprocess.run(["bash", str(Path(up).parent / "down.sh"), str(workdir)], check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def fill_options(source: dict[str, Any]) -> dict[str, Any]:
    """The operator's option table (options.py) writes each option's default, bounds and choices into the schema:
    one table for the parser, the CRD and the defaults. A row whose field the source lacks is an error."""
    from seamless_dask_operator.options import OPTION_TABLE

    for version in source["spec"]["versions"]:
        spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        for option in OPTION_TABLE:
            node, parent = spec, None
            for part in option.key.split("."):
                parent = node
                node = (node.get("properties") or {}).get(part)
                if node is None:
                    raise GenerationError(f"options.py names spec.{option.key}, which the CRD source lacks")
            for key, value in (("default", option.default), ("minimum", option.minimum),
                               ("maximum", option.maximum), ("enum", list(option.choices) or None)):
                if value is None:
                    node.pop(key, None)
                else:
                    node[key] = value
            if parent is not spec and isinstance(parent.get("default"), dict) and option.default is not None:
                parent["default"][option.key.rsplit(".", 1)[1]] = option.default  # the object's own default
    return source


def with_earlier_versions(crd: dict[str, Any]) -> dict[str, Any]:
    """The source's one version (identity.VERSION, stored) and each of identity.EARLIER_VERSIONS served beside it
    with the same schema: a resource made under an earlier version keeps answering to it, and the API server
    converts between them by the apiVersion alone (no conversion webhook: the schemas agree). The earlier ones
    carry no descriptions (``kubectl explain`` reads the stored one), so the CRD stays under kubectl apply's limit."""
    from seamless_dask_runtime.model.identity import EARLIER_VERSIONS

    [current] = crd["spec"]["versions"]
    earlier = []
    for name in EARLIER_VERSIONS:
        version = copy.deepcopy(current)
        version.update(name=name, storage=False)
        version["schema"]["openAPIV3Schema"] = _without_descriptions(version["schema"]["openAPIV3Schema"])
        earlier.append(version)
    crd["spec"]["versions"] = [*earlier, current]
    return crd


def _without_descriptions(node: Any) -> Any:
    if isinstance(node, list):
        return [_without_descriptions(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {key: _without_descriptions(value) for key, value in node.items()
            if not (key == "description" and isinstance(value, str))}


def build(kubeconfig: str) -> tuple[str, dict[str, Any]]:
    source = fill_options(yaml.safe_load(fill_identity(SOURCE.read_text())))
    schemas, version = fetch_openapi(kubeconfig, openapi_paths(source))
    crd = with_earlier_versions(generate(source, schemas))
    return render(crd, version), crd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", help="API server whose OpenAPI to embed (default $KUBECONFIG)")
    parser.add_argument("--check", action="store_true", help="compare with the committed file instead of writing")
    args = parser.parse_args(argv)
    try:
        with api_server(args.kubeconfig) as kubeconfig:
            text, crd = build(kubeconfig)
    except GenerationError as exc:
        print(f"gen-crd: {exc}", file=sys.stderr)
        return 2
    size = last_applied_size(crd)
    print(f"{OUTPUT.relative_to(REPO)}: {len(text.encode())} bytes of YAML, {size} bytes as JSON "
          f"(kubectl apply's annotation limit {LAST_APPLIED_LIMIT})")
    if size > LAST_APPLIED_LIMIT:
        print("too big for client-side kubectl apply: trim (see this script's docstring)", file=sys.stderr)
        return 1
    if args.check:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT.relative_to(REPO)} is stale: run scripts/gen-crd.py and commit it", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
