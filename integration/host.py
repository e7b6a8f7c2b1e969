"""Inspecting the host: links (names, aliases, MTU, bridge ports, addresses), container
network namespaces, routes, iptables rules, and the after-test leak check (leaks()).

Reads /sys and /proc directly, or runs `ip`, `iptables-save` and `ip6tables-save`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from integration.cmd import run
from integration.constants import ALIAS_PREFIX, ALIAS_PREFIXES, LINK_PREFIXES, PLUGIN
from integration.dockerd import exec_root_of
from integration.processes import cmdline_of


def links() -> dict[str, str]:
    """{ifname: ifalias} for every link in the host namespace."""
    result = {}
    for d in Path("/sys/class/net").iterdir():
        try:
            alias = (d / "ifalias").read_text().strip()
        except OSError:
            alias = ""
        result[d.name] = alias
    return result


def pynetdrv_links() -> dict[str, str]:
    """Links that look like any pynetdrv's (by alias or by name)."""
    return {name: alias for name, alias in links().items()
            if alias.startswith(ALIAS_PREFIXES) or name.startswith(LINK_PREFIXES)}


def our_links() -> dict[str, str]:
    """Links carrying the alias of the pynetdrv instance under test."""
    return {name: alias for name, alias in links().items() if alias.startswith(ALIAS_PREFIX)}


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def link_mtu(name: str) -> int:
    return int(Path("/sys/class/net", name, "mtu").read_text())


def link_master(name: str) -> str | None:
    """The bridge a port is enslaved to."""
    master = Path("/sys/class/net", name, "master")
    return master.resolve().name if master.exists() else None


def ports_of(bridge: str) -> list[str]:
    """The pnve- veths enslaved to a bridge."""
    return sorted(n for n in links() if n.startswith("pnve-") and link_master(n) == bridge)


def link_alias(name: str) -> str:
    return Path("/sys/class/net", name, "ifalias").read_text().strip()


def link_addresses(name: str) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    data = json.loads(run(["ip", "-j", "addr", "show", "dev", name]))
    return [ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}")
            for entry in data for a in entry.get("addr_info", [])]


def bridge_name_for(network_id: str) -> str:
    return f"pnbr-{network_id[:10]}"


def veth_name_for(endpoint_id: str) -> str:
    return f"pnve-{endpoint_id[:10]}"


def netns_dirs() -> set[str]:
    """Where engines keep container netns: <exec-root>/netns (SandboxKey), i.e. /run/docker/netns
    for a default engine, and the exec-root of the engine under test (Docker 26.1 started by
    scripts/test has its own, named in $PYNETDRV_IT_EXEC_ROOT and on dockerd's command line)."""
    roots = {Path("/var/run/docker")}
    if os.environ.get("PYNETDRV_IT_EXEC_ROOT"):
        roots.add(Path(os.environ["PYNETDRV_IT_EXEC_ROOT"]))
    for pid in run(["pidof", "dockerd"], check=False).split():
        roots.add(exec_root_of(cmdline_of(int(pid))))
    return {f"{root.resolve()}/netns/" for root in roots}


def netns_entries() -> set[str]:
    """Live container network namespaces: nsfs bind mounts under <exec-root>/netns (see
    netns_dirs). dockerd unmounts a sandbox's netns at once but deletes the file only in a
    periodic GC (a minute later), so the mount, not the file, tells a live namespace.
    Namespaces under /run/netns are not ours (the netns unit tests, which may run
    concurrently, use them)."""
    dirs = tuple(netns_dirs())
    found = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            mountpoint = pre.split(" ")[4]
            if post.split(" ", 1)[0] == "nsfs" and ("/docker/netns/" in mountpoint or mountpoint.startswith(dirs)):
                found.add(mountpoint)
    return found


def host_routes() -> list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]]:
    routes = []
    for fam in ("-4", "-6"):
        for r in json.loads(run(["ip", "-j", fam, "route", "show", "table", "all"])):
            dst = r.get("dst")
            if not dst or dst == "default" or r.get("type") not in (None, "unicast"):
                continue
            with contextlib.suppress(ValueError):
                routes.append((ipaddress.ip_network(dst, strict=False), r.get("dev", "")))
    return routes


def iptables_dump() -> str:
    parts = []
    for tool in ("iptables-save", "ip6tables-save"):
        parts.append(run([tool], check=False, timeout=30))
    return "\n".join(parts)


def leaks(links_before: set[str], netns_before: set[str], bridges: Iterable[str],
          subnets: Iterable[str]) -> list[str]:
    """What pynetdrv (or a test) left behind on the host:
    - any link with our instance's alias (`pynetdrv-it:`);
    - any bridge the test made (by name), whatever its alias;
    - any new pnbr-/pnve-/pnvc- link or `pynetdrv:`-aliased link since the test began, unless
      it carries another instance's alias (`<other>:bridge|veth:<id>`);
    - container network namespaces still mounted that were not there before;
    - iptables/ip6tables rules naming a bridge or subnet of the test, or our instance."""
    found = []
    bridges = {b for b in bridges if b}
    for name, alias in sorted(links().items()):
        foreign = bool(re.fullmatch(r"[\w.-]+:(bridge|veth):\S+", alias)) and not alias.startswith(ALIAS_PREFIXES)
        if (alias.startswith(ALIAS_PREFIX) or name in bridges
                or (name not in links_before and not foreign
                    and (name.startswith(LINK_PREFIXES) or alias.startswith(ALIAS_PREFIXES)))):
            found.append(f"link {name} (alias {alias!r}) still exists")
    for ns in sorted(netns_entries() - netns_before):
        found.append(f"network namespace {ns} is still mounted")
    needles = [re.escape(n) for n in bridges | {s for s in subnets if s}]
    pattern = re.compile(rf"(?<![\w.:-])({'|'.join(needles)})(?![\w-])" if needles else r"(?!x)x")
    # This instance's chains exist only while it has networks: none are left after a test.
    chain = f"{PLUGIN.upper()}-"
    for line in iptables_dump().splitlines():
        if line.startswith("-A") and pattern.search(line):
            found.append(f"iptables rule left: {line}")
        elif chain in line and line.startswith((":", "-A")):
            found.append(f"iptables chain or rule of {PLUGIN} left: {line}")
    return found


def forward_policies() -> dict[str, str]:
    """The FORWARD policy of iptables and ip6tables (pynetdrv must never change them)."""
    policies = {}
    for tool in ("iptables", "ip6tables"):
        first = run([tool, "-w", "-S", "FORWARD"], check=False, timeout=30).splitlines()[:1]
        policies[tool] = first[0] if first else "?"
    return policies
