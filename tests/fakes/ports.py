"""A PortReserver for unit tests: our own table only, plus ports a pretend
host process holds (``host_taken``)."""

from __future__ import annotations

from pynetdrv.ports.bindings import PortRequest
from pynetdrv.ports.reserver import Key, PortTable, _refused


class FakeReserver(PortTable):
    def __init__(self) -> None:
        super().__init__()
        self.host_taken: set[Key] = set()

    async def reserve(self, request: PortRequest) -> int:
        for port in self.candidates(request):
            key = (request.proto, request.host_ip, port)
            if not self.clashes(key) and key not in self.host_taken:
                self._claims[key] = None
                return port
        raise _refused(request, "host port already in use")

    async def release(self, proto: str, host_ip: str, port: int) -> None:
        self._claims.pop((proto, host_ip, port), None)

    def close(self) -> None:
        self._claims.clear()
