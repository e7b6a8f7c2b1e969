"""pynetdrv's IPAM under load and at its limits; mixing it with Docker's own drivers."""

from __future__ import annotations

import ipaddress
import re
from concurrent.futures import ThreadPoolExecutor

from integration.constants import PLUGIN
from integration.docker_objects import docker, ping
from integration.host import link_addresses, ports_of


def test_twenty_parallel_runs_get_unique_addresses(make_network, make_container, subnets):
    sub = subnets.v4()
    net = make_network("--subnet", str(sub))
    gw = next(sub.hosts())
    with ThreadPoolExecutor(max_workers=20) as pool:
        futures = [pool.submit(make_container, net, check=False, timeout=180) for _ in range(20)]
        containers = [f.result() for f in futures]
    failed = [(c.name, c.result.output) for c in containers if c.result is None or not c.result.ok]
    assert not failed, f"{len(failed)} of 20 parallel docker run failed: {failed}"
    ips = [c.ip(net) for c in containers]
    assert len(set(ips)) == 20, f"duplicate addresses: {sorted(ips)}"
    assert all(ip in sub and ip != gw for ip in ips), sorted(ips)
    ports = ports_of(net.bridge)
    assert len(ports) == 20, f"expected 20 veths on {net.bridge}, found {len(ports)}"
    ping(containers[0], ips[-1])
    ping(containers[-1], ips[0])


def test_small_pool_exhaustion_and_reuse(make_network, make_container, subnets):
    sub = next(subnets.v4().subnets(new_prefix=29))  # 6 hosts: the gateway + 5 containers
    net = make_network("--subnet", str(sub))
    gw = next(sub.hosts())
    five = [make_container(net) for _ in range(5)]
    ips = {c.ip(net) for c in five}
    assert ips == set(sub.hosts()) - {gw}, sorted(ips)

    sixth = make_container(net, check=False)
    assert sixth.result is not None and sixth.result.rc != 0, "a 6th container got an address in a full /29"
    msg = sixth.result.output
    assert re.search(r"exhaust|pool|no (more |free )?(available )?(ip|address)|full", msg, re.IGNORECASE), (
        f"the error does not mention the pool/exhaustion: {msg}")
    assert not sixth.running()

    freed = five[0].ip(net)
    docker("rm", "-f", five[0].name)
    docker("rm", "-f", sixth.name)
    newcomer = make_container(net)
    assert newcomer.ip(net) == freed
    ping(newcomer, five[1].ip(net))


def test_pynetdrv_network_with_default_ipam(make_network, make_container, subnets):
    sub = subnets.v4()
    net = make_network("--subnet", str(sub), ipam=None)
    assert net.inspect()["IPAM"]["Driver"] == "default"
    gw = next(sub.hosts())
    assert ipaddress.ip_interface(f"{gw}/{sub.prefixlen}") in link_addresses(net.bridge)
    c1, c2 = make_container(net), make_container(net)
    assert c1.ip(net) in sub and c2.ip(net) in sub
    ping(c1, c2.ip(net))
    ping(c2, c1.ip(net))
    ping(c1, gw)


def test_docker_bridge_with_pynetdrv_ipam(make_network, make_container, subnets):
    sub = subnets.v4()
    net = make_network("--subnet", str(sub), driver="bridge")
    info = net.inspect()
    assert info["Driver"] == "bridge" and info["IPAM"]["Driver"] == PLUGIN
    c = make_container(net)
    assert c.ip(net) in sub and c.ip(net) != next(sub.hosts())
    ping(c, next(sub.hosts()))
    # The address came from our pool: asking for it again is refused.
    dup = make_container(net, "--ip", str(c.ip(net)), check=False)
    assert dup.result is not None and dup.result.rc != 0
