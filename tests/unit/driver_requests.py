"""NetworkDriver requests as dockerd sends them, built for the NetworkService
unit tests (networks and endpoints), with the IDs they use."""

from __future__ import annotations

from typing import Any

from pynetdrv.api import network_models as nm

NID = "fa3c5b26e4d633f0ed05677ce5c371fbdad26153b46ee011a60c4a95cc566069"
NID2 = "aad8b42cf9ce079beb713487cec538cd22f0d6a6650482bd662c8d560e690059"
EID = "2998f72c5e354322daf63ecba9dc084588134edb492ddc99e317b72693b40d02"
EID2 = "06fd54c349e6a52b4671361957e1b6e6802ee850910848e88f87ee1b93e1f6be"
GENERIC = "com.docker.network.generic"


def create_req(nid: str = NID, generic: dict[str, Any] | None = None,
               v4: list[tuple[str, str]] | None = None, v6: list[tuple[str, str]] | None = None,
               internal: bool = False) -> nm.CreateNetworkRequest:
    v4 = [("10.1.0.0/16", "10.1.0.1/16")] if v4 is None else v4
    v6 = v6 or []
    options: dict[str, Any] = {"com.docker.network.enable_ipv6": bool(v6), GENERIC: generic or {}}
    if internal:
        options["com.docker.network.internal"] = True
    return nm.CreateNetworkRequest(
        NetworkID=nid, Options=options,
        IPv4Data=[nm.IPAMData(AddressSpace="local", Pool=p, Gateway=g) for p, g in v4],
        IPv6Data=[nm.IPAMData(AddressSpace="local", Pool=p, Gateway=g) for p, g in v6],
    )


def ep_req(eid: str = EID, nid: str = NID, address: str = "10.1.0.2/16", v6: str = "",
           mac: str = "") -> nm.CreateEndpointRequest:
    return nm.CreateEndpointRequest(
        NetworkID=nid, EndpointID=eid,
        Interface=nm.EndpointInterface(Address=address, AddressIPv6=v6, MacAddress=mac),
        Options={"com.docker.network.endpoint.exposedports": [], "com.docker.network.portmap": []},
    )


def ref(eid: str = EID, nid: str = NID) -> nm.EndpointRef:
    return nm.EndpointRef(NetworkID=nid, EndpointID=eid)


def join_req(eid: str = EID, nid: str = NID, key: str = "/var/run/docker/netns/e6e11d048760") -> nm.JoinRequest:
    return nm.JoinRequest(NetworkID=nid, EndpointID=eid, SandboxKey=key, Options={})
