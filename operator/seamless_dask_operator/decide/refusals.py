"""What a refusal means: a spec the model refused, or an API answer that no retry of the same spec helps (pure).

Both end in ``Failed`` with the words of whoever refused (the model names the field, the API
server its own), a ``SpecValid=False`` condition and one Event per refusal (Kubernetes would only count a repeat).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..builders.objects import ClusterRef
from .observation import Refusal, RefusalKind
from .plan import PatchStatus, Plan, PostEvent
from .status import Observed, status_patch, timestamp

INVALID_SPEC = "InvalidSpec"


def refusal_kind(status: int, message: str = "") -> RefusalKind | None:
    """Which API answers are refusals; any other (409, 429, 5xx, ...) is worth a retry soon."""
    if status in (400, 422):  # the request itself is wrong: retrying the same spec cannot help
        return RefusalKind.REJECTED
    if status == 403 and "exceeded quota" in message:  # capacity, not failure: tried every round until it frees
        return RefusalKind.QUOTA
    if status == 403:  # a missing right: tried again every round, recovers by itself once granted
        return RefusalKind.FORBIDDEN
    return None


def api_message(status: int, reason: str, body: str | None) -> str:
    """The API server's own words (it names the field), not the whole response."""
    try:
        message = json.loads(body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return f"the API server refused a child object ({status} {reason}): {message or body}"


def changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return {k: old.get(k) for k in new} != dict(new)


def failed(ref: ClusterRef, message: str, reason: str, old_status: Mapping[str, Any], generation: int,
           now: float) -> Plan:
    """``Failed`` with ``message``; the Event once per refusal: seen every round, or again in a new generation (an
    edit that left the cause alone), it is said once; another refusal is said."""
    already_reported = old_status.get("phase") == "Failed" and (
        old_status.get("observedGeneration") == generation
        or (old_status.get("reason"), old_status.get("message")) == (reason, message))
    status = status_patch(ref, Observed(generation=generation, spec_error=message, spec_error_reason=reason),
                          dict(old_status), timestamp(now))
    actions: list[Any] = [] if already_reported else [PostEvent("Warning", reason, message)]
    if changed(old_status, status):
        actions.append(PatchStatus(status))
    return Plan(status=status, actions=tuple(actions))


def refused(ref: ClusterRef, refusal: Refusal, old_status: Mapping[str, Any], generation: int, now: float) -> Plan:
    if refusal.kind is RefusalKind.QUOTA:
        return quota_exceeded(refusal.message, old_status)
    return failed(ref, refusal.message, refusal.kind.value, old_status, generation, now)


def quota_exceeded(message: str, old_status: Mapping[str, Any]) -> Plan:
    """A full ResourceQuota: the cluster waits (its phase as it was, never Failed), says why once, and goes on by
    itself when the quota frees."""
    status = {**old_status, "reason": RefusalKind.QUOTA.value, "message": message}
    if old_status.get("phase") in (None, "Failed"):
        status["phase"] = "Starting"
    actions: list[Any] = []
    if old_status.get("reason") != RefusalKind.QUOTA.value or old_status.get("message") != message:
        actions.append(PostEvent("Warning", RefusalKind.QUOTA.value, message))
    if changed(old_status, status):
        actions.append(PatchStatus(status))
    return Plan(status=status, actions=tuple(actions))


def waiting_for_a_new_spec(old_status: Mapping[str, Any], generation: int) -> bool:
    """This generation was refused by the API already: no retry helps until the spec changes."""
    return old_status.get("phase") == "Failed" and old_status.get("observedGeneration") == generation \
        and old_status.get("reason") == RefusalKind.REJECTED.value
