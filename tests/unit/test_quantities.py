"""Memory in the status-file spelling becomes a Kubernetes quantity of exactly the bytes Dask reads."""

from __future__ import annotations

import dask.utils
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes.utils import parse_quantity

from seamless_dask_runtime.model.sizing import kubernetes_quantity

SPELLINGS = ["512m", "4g", "54000mb", "54000MB", "4 kiB", "4GiB", "1.5GB", "1000", "3kb", "2KiB", "100 MB", "7T"]


@pytest.mark.parametrize("memory", SPELLINGS)
def test_same_bytes_for_kubernetes_as_for_dask(memory: str) -> None:
    quantity = kubernetes_quantity(memory)
    assert parse_quantity(quantity) == dask.utils.parse_bytes(memory), (memory, quantity)


def test_512m_is_megabytes_never_millibytes() -> None:
    assert kubernetes_quantity("512m") == "512M"


@given(st.integers(1, 10**6), st.sampled_from(["", "k", "K", "m", "M", "g", "G", "kb", "MB", "GiB", "mib", "KiB"]),
       st.sampled_from(["", " "]))
def test_any_integer_size(number: int, unit: str, space: str) -> None:
    memory = f"{number}{space}{unit}"
    assert parse_quantity(kubernetes_quantity(memory)) == dask.utils.parse_bytes(memory)
