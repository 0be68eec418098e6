"""Which device this process trains on, described for the worker registry and the records.

Reading it initialises CUDA, so only the process that trains may call it (never a parent
that forks workers afterwards)."""

from __future__ import annotations

import platform
from typing import TypedDict

import torch


class DeviceInfo(TypedDict):
    kind: str  # "cuda" | "cpu"
    name: str
    memory_gib: float | None
    torch: str
    cuda: str | None


def describe_device() -> DeviceInfo:
    """The device this process trains on: kind, name, memory, torch and CUDA versions."""
    description: DeviceInfo = {
        "kind": "cpu",
        "name": platform.processor() or platform.machine(),
        "memory_gib": None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        description["kind"] = "cuda"
        description["name"] = properties.name
        description["memory_gib"] = round(properties.total_memory / 2**30, 1)
    return description
