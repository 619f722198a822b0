"""Where kopf keeps what it last handled of a resource, bounded in size.

kopf stores a copy of the spec (its "diff-base") in an annotation and writes it
in the same patch that adds or removes the finalizer. Annotations are limited
to 256 KiB in total, so a spec with a large value (a 300 kB env value) made
every such patch fail with 422: the spec was never marked handled and the
finalizer never came off, so the resource could not be deleted.

The stored copy is compacted instead: long strings, and then the largest
subtrees while the whole is over budget, are replaced by a digest of their
content. kopf compares compacted copies with compacted copies, so a change
anywhere is still seen, at the path of the digested value (e.g.
``spec.workers.env``); specs of ordinary size are stored unchanged.

What the operator itself writes into the spec (the image it pins at creation, in the round's own patch) is
stored as handled too: it is no edit, and the event it causes starts no second round.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import kopf

# Strings above this many characters are stored as their digest (a command line or an image name is shorter).
LONG_STRING = 256
# The stored copy stays under this many bytes, well below the 256 KiB the API allows all annotations together.
BUDGET = 32 * 1024


def _encoded(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def digest(value: Any) -> str:
    return "sha256:" + hashlib.sha256(_encoded(value).encode()).hexdigest()


def _short_strings(value: Any) -> Any:
    if isinstance(value, str):
        return digest(value) if len(value) > LONG_STRING else value
    if isinstance(value, dict):
        return {key: _short_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_short_strings(item) for item in value]
    return value


DIGEST_SIZE = len(_encoded("sha256:" + "0" * 64))


def _within(value: Any, budget: int) -> Any:
    """``value`` with its largest parts shrunk (recursively) or digested until its encoding fits ``budget``."""
    size = len(_encoded(value))
    if size <= budget:
        return value
    if not isinstance(value, (dict, list)) or not value:
        return digest(value)
    keys = list(value.keys()) if isinstance(value, dict) else list(range(len(value)))
    if isinstance(value, dict):
        floor = sum(len(_encoded(k)) + 2 + DIGEST_SIZE for k in keys)  # every part a digest
    else:
        floor = len(keys) * (DIGEST_SIZE + 1)
    if floor > budget:
        return digest(value)  # too many parts to keep each: the whole, as one digest
    result: Any = dict(value) if isinstance(value, dict) else list(value)
    sizes = {key: len(_encoded(value[key])) for key in keys}
    for key in sorted(keys, key=lambda k: sizes[k], reverse=True):
        if size <= budget:
            break
        shrunk = _within(value[key], max(budget - (size - sizes[key]), DIGEST_SIZE))
        size += len(_encoded(shrunk)) - sizes[key]
        result[key] = shrunk
    return result if size <= budget else digest(value)


def compact(essence: Any, budget: int = BUDGET) -> Any:
    """What kopf keeps of a resource: ``essence`` when small, else with long or large parts as digests (pure)."""
    shortened = _short_strings(essence)
    if not isinstance(shortened, dict):
        return _within(shortened, budget)
    # Top-level stanzas (spec, metadata) are kept as keys, so a diff still says which one changed.
    result = _within(shortened, budget)
    return result if isinstance(result, dict) else {key: digest(value) for key, value in shortened.items()}


def merged(base: Any, patch: Any) -> Any:
    """``base`` after a JSON merge patch (RFC 7386, as kopf sends its patches): None removes a key (pure)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(base) if isinstance(base, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merged(result.get(key), value)
    return result


class CompactDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's annotation diff-base, compacted, with the operator's own spec writes (see the module docstring)."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        essence = super().build(body=body, extra_fields=extra_fields)
        return compact(dict(essence))

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        own = patch.get("spec")
        if own:
            essence = compact({**essence, "spec": merged(essence.get("spec"), own)})
        super().store(body=body, patch=patch, essence=essence)
