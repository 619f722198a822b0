"""One active operator among its replicas: a coordination.k8s.io Lease, as client-go's leader election keeps it.

kopf's peering is not an election: it pauses an operator while a peer of higher priority is alive, so two
replicas of equal priority both pause or both run, and it needs a cluster-wide CRD of its own. Here each
replica campaigns for the Lease ``NAME`` in the operator's namespace; the holder runs the operator, the others
wait (ready, so a rollout proceeds) and take over once the holder stops renewing:

* expiry is judged on the candidate's own clock, from when it last saw the Lease change (never by comparing
  the holder's renewTime with its own clock: clocks differ);
* a holder that cannot renew within ``renew_deadline`` (less than ``lease_duration``) stops acting at once,
  by exiting, before any other replica may take the Lease: never two active;
* a holder that stops on purpose gives the Lease up (empty holder): its successor starts within a retry
  period instead of a lease duration.

Writes are optimistic (``resourceVersion``): two candidates taking an expired Lease at once cannot both win.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .api_client import ApiError, request

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ElectionTiming:
    """client-go's defaults are 15/10/2 s; a killed leader is replaced here within ~12 s (lease + a retry)."""

    lease_duration: float = 10.0
    renew_deadline: float = 7.0
    retry_period: float = 2.0


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Lease:
    def __init__(self, namespace: str, name: str, identity: str, timing: ElectionTiming = ElectionTiming()):
        self.namespace, self.name, self.identity, self.timing = namespace, name, identity, timing
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self._seen: tuple[str, float] | None = None  # (resourceVersion, when first seen on our clock)
        self._renewed_at = 0.0  # time.monotonic() of our last successful renewal

    def _read(self) -> dict[str, Any] | None:
        try:
            return request("GET", f"{self.path}/{self.name}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def _spec(self, acquired: bool) -> dict[str, Any]:
        spec: dict[str, Any] = {"holderIdentity": self.identity, "renewTime": _now(),
                                "leaseDurationSeconds": int(self.timing.lease_duration)}
        if acquired:
            spec["acquireTime"] = _now()
        return spec

    def _expired(self, lease: dict[str, Any]) -> bool:
        """Free, or unchanged for a lease duration as this replica's clock measures it."""
        spec = lease.get("spec") or {}
        if not spec.get("holderIdentity"):
            return True
        version = lease["metadata"]["resourceVersion"]
        if self._seen is None or self._seen[0] != version:
            self._seen = (version, time.monotonic())
        duration = float(spec.get("leaseDurationSeconds") or self.timing.lease_duration)
        return time.monotonic() - self._seen[1] > duration

    def try_acquire(self) -> bool:
        """One attempt: True when this replica holds the Lease now."""
        lease = self._read()
        try:
            if lease is None:
                request("POST", self.path, body={"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                                 "metadata": {"name": self.name, "namespace": self.namespace},
                                                 "spec": self._spec(acquired=True)})
            elif (lease.get("spec") or {}).get("holderIdentity") == self.identity or self._expired(lease):
                taking = (lease.get("spec") or {}).get("holderIdentity") != self.identity
                lease["spec"] = {**(lease.get("spec") or {}), **self._spec(acquired=taking)}
                if taking:
                    lease["spec"]["leaseTransitions"] = int(lease["spec"].get("leaseTransitions") or 0) + 1
                request("PUT", f"{self.path}/{self.name}", body=lease)  # resourceVersion: optimistic
            else:
                return False
        except ApiError as exc:
            if exc.status in (409, 422):  # another candidate wrote first
                return False
            raise
        self._renewed_at = time.monotonic()
        return True

    def acquire(self, stopping: Callable[[], bool]) -> bool:
        """Campaign until this replica holds the Lease (True) or ``stopping()`` (False)."""
        while not stopping():
            try:
                if self.try_acquire():
                    log.info("leader: %s holds Lease %s/%s", self.identity, self.namespace, self.name)
                    return True
            except Exception as exc:  # the API unreachable for a while: keep campaigning
                log.warning("leader election: %s", exc)
            time.sleep(self.timing.retry_period)
        return False

    def renew(self) -> bool:
        """Keep the Lease; False once it was not renewed within the renew deadline (leadership is lost)."""
        try:
            if self.try_acquire():
                return True
        except Exception as exc:
            log.warning("could not renew Lease %s/%s: %s", self.namespace, self.name, exc)
        return time.monotonic() - self._renewed_at < self.timing.renew_deadline

    def release(self) -> None:
        """Give the Lease up (an empty holder), so that a successor takes over at once."""
        try:
            lease = self._read()
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease["spec"] = {**lease["spec"], "holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": _now()}
            request("PUT", f"{self.path}/{self.name}", body=lease)
            log.info("released Lease %s/%s: a replica may take over at once", self.namespace, self.name)
        except Exception as exc:  # it expires by itself
            log.warning("could not release Lease %s/%s: %s", self.namespace, self.name, exc)
