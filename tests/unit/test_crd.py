"""The CRD without an API server: its source describes every field, the generated file is structural, the name
rules are identity.py's, and the generator's translation of Kubernetes schemas keeps what a CRD may keep."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from seamless_dask_runtime.model import identity
from seamless_dask_runtime.model.parameters import ParameterError, from_status_parameters

REPO = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_crd", REPO / "scripts" / "gen-crd.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()
CRD = yaml.safe_load(GEN.OUTPUT.read_text())
SOURCE = yaml.safe_load(GEN.fill_identity(GEN.SOURCE.read_text()))


def _root(crd: dict[str, Any]) -> dict[str, Any]:
    """The schema of the stored version (the source has only that one)."""
    [version] = [v for v in crd["spec"]["versions"] if v.get("storage")]
    return version["schema"]["openAPIV3Schema"]


def _without_descriptions(node: Any) -> Any:
    if isinstance(node, list):
        return [_without_descriptions(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {k: _without_descriptions(v) for k, v in node.items() if not (k == "description" and isinstance(v, str))}


def test_earlier_versions_are_served_with_the_same_schema() -> None:
    """v1beta1 is stored; v1alpha1 is still served (no conversion webhook: the schemas agree)."""
    versions = {v["name"]: v for v in CRD["spec"]["versions"]}
    assert set(versions) == {identity.VERSION, *identity.EARLIER_VERSIONS} and identity.VERSION == "v1beta1"
    assert [name for name, v in versions.items() if v["storage"]] == [identity.VERSION]
    assert all(v["served"] for v in versions.values())
    current = versions[identity.VERSION]
    for name in identity.EARLIER_VERSIONS:
        earlier = versions[name]
        assert _without_descriptions(earlier["schema"]) == _without_descriptions(current["schema"])
        assert {k: v for k, v in earlier.items() if k not in ("name", "storage", "schema")} == \
            {k: v for k, v in current.items() if k not in ("name", "storage", "schema")}
    assert "conversion" not in CRD["spec"] or CRD["spec"]["conversion"].get("strategy") in (None, "None")


def _fields(schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every named field below ``schema``, not below an embedded (x-embed) one."""
    for name, prop in schema.get("properties", {}).items():
        yield f"{path}.{name}", prop
        if GEN.MARKER not in prop:
            yield from _fields(prop, f"{path}.{name}")
            yield from _fields(prop.get("items", {}), f"{path}.{name}[]")


def test_every_field_we_own_is_described() -> None:
    root = _root(SOURCE)
    owned = [(path, prop) for path, prop in _fields(root["properties"]["spec"], "spec")]
    owned += list(_fields(root["properties"]["status"], "status"))
    assert len(owned) > 60
    undescribed = [path for path, prop in owned if not str(prop.get("description", "")).strip()]
    assert not undescribed, f"fields without a description: {undescribed}"


def test_embedded_fields_are_the_kubernetes_schemas_not_blobs() -> None:
    spec = _root(CRD)["properties"]["spec"]["properties"]
    for part in ("workers", "scheduler"):
        pod = spec[part]["properties"]
        assert pod["tolerations"]["items"]["properties"]["operator"]["enum"] == ["", "Equal", "Exists", "Gt", "Lt"]
        assert pod["env"]["x-kubernetes-list-type"] == "map" and pod["env"]["x-kubernetes-list-map-keys"] == ["name"]
        assert pod["env"]["items"]["required"] == ["name"]
        assert pod["resources"]["properties"]["limits"]["additionalProperties"]["pattern"] == GEN.QUANTITY_PATTERN
        assert "nodeAffinity" in pod["affinity"]["properties"]
        assert pod["nodeSelector"]["additionalProperties"] == {"type": "string"}
    volume = spec["volumes"]["items"]
    assert {"emptyDir", "persistentVolumeClaim", "configMap", "hostPath", "csi", "nfs"} <= set(volume["properties"])
    assert spec["volumeMounts"]["x-kubernetes-list-map-keys"] == ["mountPath"]
    peer = spec["scheduler"]["properties"]["allowFrom"]["items"]["properties"]
    assert {"podSelector", "namespaceSelector", "ipBlock"} == set(peer)


def _nodes(schema: Any) -> Iterator[dict[str, Any]]:
    if isinstance(schema, dict):
        yield schema
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                yield from _nodes(schema[key])
        for prop in schema.get("properties", {}).values():
            yield from _nodes(prop)


def test_generated_schema_is_structural() -> None:
    text = json.dumps(CRD)
    assert "$ref" not in text and "x-kubernetes-patch" not in text and "x-kubernetes-unions" not in text
    assert GEN.MARKER not in text
    for node in _nodes(_root(CRD)):
        assert "allOf" not in node and "oneOf" not in node, node
        if "anyOf" in node:  # only the int-or-string form a CRD allows
            assert node.get("x-kubernetes-int-or-string") is True, node
        assert "type" in node or node.get("x-kubernetes-int-or-string") or \
            node.get("x-kubernetes-preserve-unknown-fields"), node
        if node.get("type") == "object" and "properties" in node:
            assert "additionalProperties" not in node, node


def test_crd_fits_client_side_kubectl_apply() -> None:
    size = GEN.last_applied_size(CRD)
    print(f"\nCRD as kubectl apply stores it: {size} bytes of {GEN.LAST_APPLIED_LIMIT}")
    assert size < GEN.LAST_APPLIED_LIMIT


def test_name_rules_are_identitys() -> None:
    rules = {r["rule"]: r["message"] for r in _root(CRD)["x-kubernetes-validations"]}
    assert f"size(self.metadata.name) <= {identity.MAX_NAME_LENGTH}" in rules
    assert f"self.metadata.name.matches('{identity.NAME_PATTERN}')" in rules
    assert all("metadata.name" in message for message in rules.values())
    longest = "a" * identity.MAX_NAME_LENGTH
    assert len(identity.scheduler_name(longest)) == identity.DNS_LABEL_MAX_LENGTH
    assert len(identity.scheduler_name(longest + "a")) > identity.DNS_LABEL_MAX_LENGTH


def test_source_constants_must_exist() -> None:
    assert GEN.fill_identity("<= @MAX_NAME_LENGTH@") == f"<= {identity.MAX_NAME_LENGTH}"
    with pytest.raises(GEN.GenerationError, match="@NO_SUCH_CONSTANT@"):
        GEN.fill_identity("@NO_SUCH_CONSTANT@")


# -- what a tenant may write: no line breaks in text, a bound on workers (issue 21, items 7 and 8) ----------------

ONE_LINE = f"^[^{identity.CONTROL_CLASS}]*$"
# Model fields (status-file spelling) whose text must be one line, by the CRD field that carries them.
ONE_LINE_CRD_FIELDS = ("image", "partition", "project", "resourceSpec", "memoryPerCorePropertyName",
                       "unknownTaskDuration", "targetDuration", "lifetime", "lifetimeStagger")


def _python_regex(re2: str) -> str:
    """Go RE2's ``\\x{HEX}`` as Python's ``\\UXXXXXXXX``: to check the CRD's pattern against the model here."""
    return re.sub(r"\\x\{([0-9a-f]+)\}", lambda m: f"\\U{int(m.group(1), 16):08x}", re2)


def test_text_fields_carry_the_control_character_pattern() -> None:
    spec = _root(CRD)["properties"]["spec"]["properties"]
    for name in ONE_LINE_CRD_FIELDS:
        assert spec[name]["pattern"] == ONE_LINE, name
    assert spec["tmpdir"]["pattern"] == f"^/[^{identity.CONTROL_CLASS}]*$"
    assert spec["jobExtraDirectives"]["items"]["pattern"] == ONE_LINE
    assert spec["jobScriptPrologue"]["items"]["pattern"] == f"^[^{identity.SHELL_CONTROL_CLASS}]*$"


def test_crd_pattern_and_model_refuse_the_same_characters() -> None:
    one_line = re.compile(_python_regex(ONE_LINE))
    shell = re.compile(_python_regex(f"^[^{identity.SHELL_CONTROL_CLASS}]*$"))
    for code in [*range(0x3000), 0xFEFF, 0x10FFFF]:
        char = chr(code)
        try:
            from_status_parameters({"partition": f"a{char}b", "job_script_prologue": [f"a{char}b"]})
            model = {"partition": True, "job_script_prologue": True}
        except ParameterError as exc:
            refused = {e.field for e in exc.errors}
            model = {key: f"parameters.{key}" not in refused for key in ("partition", "job_script_prologue")}
        crd = {"partition": bool(one_line.match(f"a{char}b")), "job_script_prologue": bool(shell.match(f"a{char}b"))}
        assert model == crd, f"U+{code:04X}"


def test_worker_counts_are_bounded_as_the_model_bounds_them() -> None:
    workers = _root(CRD)["properties"]["spec"]["properties"]["workers"]["properties"]
    for name in ("replicas", "minimum", "maximum"):
        assert workers[name]["maximum"] == identity.MAX_WORKERS, name
        assert str(identity.MAX_WORKERS) in workers[name]["description"]


SCHEMAS: dict[str, Any] = {
    "io.k8s.api.core.v1.Holder": {"type": "object", "properties": {
        "thing": {"description": "The holder's thing.", "allOf": [{"$ref": "#/components/schemas/T"}]},
        "size": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.api.resource.Quantity"},
        "loop": {"$ref": "#/components/schemas/Loop"},
    }},
    "T": {"description": "A T.", "type": "object", "required": ["name"],
          "x-kubernetes-unions": [{"discriminator": "mode"}],
          "properties": {"name": {"type": "string", "default": ""},
                         "mode": {"type": "string", "enum": ["A", "B"]},
                         "kind": {"type": "string", "default": "", "enum": ["X"]},
                         "ports": {"type": "array", "items": {"$ref": "#/components/schemas/P"},
                                   "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port", "proto"],
                                   "x-kubernetes-patch-merge-key": "port"}}},
    "P": {"type": "object", "required": ["port"], "properties": {"port": {"type": "integer", "format": "int32"},
                                                                 "proto": {"type": "string", "default": "TCP"}}},
    "Loop": {"type": "object", "properties": {"again": {"$ref": "#/components/schemas/Loop"}}},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"oneOf": [{"type": "string"}, {"type": "number"}]},
}


def test_structural_translation() -> None:
    thing = GEN.embedded_field({GEN.MARKER: "io.k8s.api.core.v1.Holder.thing"}, SCHEMAS)
    assert thing["description"] == "The holder's thing."  # the field's words, not the type's
    assert "default" not in thing["properties"]["name"]  # Go zero values are no defaults
    assert thing["properties"]["mode"]["enum"] == ["", "A", "B"]  # optional: unset is ""
    assert thing["required"] == ["name"] and "x-kubernetes-unions" not in thing
    ports = thing["properties"]["ports"]
    # proto is a map key with only a default (dropped): a CRD needs its map keys required, so the list is atomic.
    assert ports["x-kubernetes-list-type"] == "atomic" and "x-kubernetes-list-map-keys" not in ports
    assert "x-kubernetes-patch-merge-key" not in ports and ports["items"]["properties"]["port"]["format"] == "int32"
    size = GEN.embedded_field({GEN.MARKER: "io.k8s.api.core.v1.Holder.size", "description": "Ours."}, SCHEMAS)
    assert size["x-kubernetes-int-or-string"] is True and size["description"] == "Ours."
    with pytest.raises(GEN.GenerationError, match="recursive"):
        GEN.embedded_field({GEN.MARKER: "io.k8s.api.core.v1.Holder.loop"}, SCHEMAS)
    with pytest.raises(GEN.GenerationError, match=r"Holder\.nothing"):
        GEN.embedded_field({GEN.MARKER: "io.k8s.api.core.v1.Holder.nothing"}, SCHEMAS)


@pytest.mark.parametrize(("quantity", "valid"), [
    ("500m", True), ("4Gi", True), ("0.5", True), ("1e3", True), (".5", True), ("+1", True), ("54000M", True),
    ("100n", True), ("4g", False), ("54000mb", False), ("4 kiB", False), ("", False), ("1Gib", False),
])
def test_quantity_pattern(quantity: str, valid: bool) -> None:
    assert bool(re.match(GEN.QUANTITY_PATTERN, quantity)) is valid


def test_the_operators_options_come_from_one_table() -> None:
    """Each Kubernetes-only option's default, bounds and choices in the CRD are options.py's (issue 24)."""
    from seamless_dask_operator.options import OPTION_TABLE

    spec = _root(CRD)["properties"]["spec"]
    for option in OPTION_TABLE:
        node = spec
        for part in option.key.split("."):
            node = node["properties"][part]
        got = {key: node.get(key) for key in ("default", "minimum", "maximum", "enum")}
        assert got == {"default": option.default, "minimum": option.minimum, "maximum": option.maximum,
                       "enum": list(option.choices) or None}, option.key
    assert spec["properties"]["workers"]["default"]["retireTimeout"] == next(
        o.default for o in OPTION_TABLE if o.key == "workers.retireTimeout")
