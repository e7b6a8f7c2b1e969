"""One error hierarchy with kinds; ``api.routes`` maps each kind to an HTTP status.

Services raise these with a message that names the object that is wrong, so the
user sees e.g. ``pool 10.1.0.0/24 is exhausted`` in ``docker`` output.
"""

from __future__ import annotations


class PynetdrvError(Exception):
    """Base class; ``status`` is the HTTP status sent with ``{"Err": msg}``."""

    status = 500


class InvalidParameter(PynetdrvError):
    """The request is well formed but asks for something invalid."""

    status = 400


class NotFound(PynetdrvError):
    """A network, endpoint or pool the request names is unknown.

    Sent as 500, not 404: Docker reads a 404 as "the plugin does not implement
    this call" and, for Program/RevokeExternalConnectivity, as success."""

    status = 500


class Conflict(PynetdrvError):
    """The request collides with existing state (address in use, overlap)."""

    status = 500


class VersionConflict(Conflict):
    """A compare-and-swap update found the record at another version than the
    caller read (another process changed it meanwhile); the message names the
    record.  Nothing was changed: read again and retry, or give up."""

    @classmethod
    def of_network(cls, network_id: str, stored: int, expected: int) -> VersionConflict:
        """The same words from every store: ``stored`` 0 = no such record,
        ``expected`` 0 = the caller meant to create it."""
        name = f"network {network_id[:12]}"
        if not expected:
            return cls(f"{name} already exists (version {stored}); it was created meanwhile")
        if not stored:
            return cls(f"{name} no longer exists (expected version {expected})")
        return cls(f"{name} is at version {stored}, not {expected}: it was changed meanwhile")


class Unavailable(PynetdrvError):
    """A resource is exhausted (no free address, no free automatic pool)."""

    status = 500


class Internal(PynetdrvError):
    """A kernel or store step failed."""

    status = 500


class StateFileError(Exception):
    """The stored state (state file or its directory) cannot be used safely or
    read; the message names the file and what is wrong."""
