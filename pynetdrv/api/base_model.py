"""Shared pydantic base for every wire model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Wire(BaseModel):
    """Field names are Docker's exact JSON names (PascalCase).  Unknown fields
    are ignored, because newer engines add fields (e.g. 28.0's enable_ipv4).
    Strict types: Docker always sends proper JSON types, so a string where a
    bool belongs is a bug worth a 400, not something to coerce."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True, strict=True)


class Empty(Wire):
    """``{}``: the request of calls with an empty body, and many replies."""
