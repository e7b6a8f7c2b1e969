"""Shared pydantic base for every wire model."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Wire(BaseModel):
    """Field names are Docker's exact JSON names (PascalCase).  Unknown fields
    are ignored, because newer engines add fields (e.g. 28.0's enable_ipv4).
    Strict types: Docker always sends proper JSON types, so a string where a
    bool belongs is a bug worth a 400, not something to coerce.

    defer_build: a model's validator is built on its first use, not when the
    class is defined; building all of them at import took ~90 ms of every
    daemon start (benchmark 5).  Validation is the same, built from the same
    schema."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True, strict=True, defer_build=True)


class Empty(Wire):
    """``{}``: the request of calls with an empty body, and many replies."""


#: A Docker network or endpoint ID: 64 hex from dockerd, 25 alphanumerics from
#: swarm.  It ends up in the interface alias that marks our links (IFALIASZ is
#: 256), so a NUL, a control character or a huge value must stop here.
ObjectID = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
