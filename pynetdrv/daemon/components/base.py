"""What the components share: reading a product only once its component has started."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def started(value: T | None, name: str) -> T:
    if value is None:
        raise RuntimeError(f"{name} is used before it was started")
    return value
