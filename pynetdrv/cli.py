"""``pynetdrv`` command line: options map one to one onto Config."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import socket
import sys
from pathlib import Path

from pynetdrv import __version__
from pynetdrv.cluster.errors import EtcdConfigError, HostForgotten
from pynetdrv.cluster.settings import ClusterSettings
from pynetdrv.cluster_cli import add_cluster_parser, cluster_command
from pynetdrv.config import (
    DEFAULT_DOCKER_SOCKET,
    DEFAULT_POOLS_V4,
    DEFAULT_POOLS_V6,
    DEFAULT_SOCKET,
    DEFAULT_STATE,
    Config,
    DefaultPool,
    parse_store,
)
from pynetdrv.daemon_target import DEFAULT_DOCKER_DATA_ROOT, locate
from pynetdrv.errors import PynetdrvError, StateFileError
from pynetdrv.lock import AlreadyRunning


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pynetdrv", description="Docker network + IPAM driver (bridges, veths, SQLite state)"
    )
    p.add_argument("--version", action="version", version=f"pynetdrv {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the plugin daemon")
    s.add_argument("--socket", type=Path, default=None,
                   help="unix socket Docker connects to; its name (without .sock) is the driver name "
                   f"(default {DEFAULT_SOCKET}, or the socket systemd passes: socket activation)")
    s.add_argument("--state", type=Path, default=DEFAULT_STATE,
                   help="SQLite state file: all state, or this host's records in cluster mode "
                   f"(default {DEFAULT_STATE})")
    s.add_argument("--store", type=_serve_store, action=_StoreAction, metavar="sqlite:PATH|etcd://HOST:PORT[,HOST:PORT...]",
                   help="sqlite:PATH: one host, everything in that file (same as --state PATH); etcd://...: cluster "
                   "mode, networks span the hosts sharing that etcd (docs/multihost.md)")
    s.add_argument("--advertise-address", metavar="IP",
                   help="cluster mode: this host's address on the underlay (its VXLAN endpoint); must be an "
                   "address of this host")
    s.add_argument("--etcd-cacert", type=Path, metavar="FILE", help="CA certificate etcd's server cert is checked with")
    s.add_argument("--etcd-cert", type=Path, metavar="FILE", help="client certificate for etcd (with --etcd-key)")
    s.add_argument("--etcd-key", type=Path, metavar="FILE", help="client key for etcd (with --etcd-cert)")
    s.add_argument("--vxlan-port", type=_port, default=4789, metavar="PORT",
                   help="cluster mode: UDP port of VXLAN between hosts (default 4789)")
    s.add_argument("--docker-socket", type=Path, default=DEFAULT_DOCKER_SOCKET, dest="serve_docker_socket",
                   help="cluster mode: the local Engine API create-once uses (docs/create-once.md; "
                   f"default {DEFAULT_DOCKER_SOCKET})")
    s.add_argument("--no-create-once", action="store_true",
                   help="cluster mode: do not create/remove cluster networks on this host's Docker")
    s.add_argument("--no-fast-path", action="store_true",
                   help="cluster mode: cross-host traffic goes through the bridge and the host's iptables "
                   "(DOCKER-USER sees it) instead of tc redirects past it (docs/multihost.md)")
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="pynetdrv's own messages; the libraries under it (pyroute2, etcd's gRPC, aiohttp) "
                   "log warnings and errors only (their debug output costs milliseconds per call)")
    s.add_argument("--default-pool", action="append", metavar="base=CIDR,size=N", type=_default_pool,
                   help="range automatic pools are carved from; repeatable, both families "
                   f"(default {' and '.join(DEFAULT_POOLS_V4 + DEFAULT_POOLS_V6)})")
    s.add_argument("--firewall-check-interval", type=_seconds, default=30.0, metavar="SECONDS",
                   help="how often the iptables rules are compared with the state and repaired (default 30; "
                   "0 turns the check off)")
    s.add_argument("--rejoin", action="store_true",
                   help="cluster mode: this host was forgotten (pynetdrv cluster forget-host): drop its cluster "
                   "networks and endpoints from the state file and join again (docs/multihost.md)")
    add_cluster_parser(sub)
    st = sub.add_parser("status", help="show networks and pools in the state file (read-only)")
    _state_options(st, found=True)
    st.add_argument("--socket", type=Path, default=None,
                    help=f"the daemon's plugin socket, to find its state (default {DEFAULT_SOCKET}, or a managed "
                    "plugin's)")
    _target_options(st)
    st.add_argument("--docker-socket", type=Path, default=DEFAULT_DOCKER_SOCKET,
                    help="Docker Engine API socket, asked for the networks' names (default "
                    f"{DEFAULT_DOCKER_SOCKET}); IDs alone when Docker does not answer within 2 s")
    st.add_argument("--no-docker", action="store_true", help="do not ask Docker for names")
    c = sub.add_parser("check", help="compare the state file with the kernel and Docker; exit 0 only if all agree",
                       description="Print every leak, orphan, duplicate or missing object, one a line. Read-only "
                       "and safe while the daemon runs, unless --repair is given.")
    _state_options(c, found=True)
    c.add_argument("--socket", type=Path, default=None,
                   help=f"the daemon's plugin socket; its name is the driver name checked (default {DEFAULT_SOCKET}, "
                   "or a managed plugin's: then its NAME:TAG is checked too)")
    _target_options(c)
    c.add_argument("--docker-socket", type=Path, default=DEFAULT_DOCKER_SOCKET,
                   help=f"Docker Engine API socket (default {DEFAULT_DOCKER_SOCKET})")
    c.add_argument("--no-docker", action="store_true", help="do not compare with Docker")
    c.add_argument("--no-firewall", action="store_true", help="do not compare (or repair) the iptables rules")
    c.add_argument("--repair", action="store_true",
                   help="fix what is safe (missing bridges/veths, orphan links with our alias); "
                   "only while the daemon is stopped (takes the state lock)")
    return p


def _state_options(p: argparse.ArgumentParser, found: bool = False) -> None:
    """``--state PATH`` and its longer form ``--store sqlite:PATH``: the last one
    given wins.  ``found``: left None when not given (status and check then
    look for the daemon, see daemon_target)."""
    default = f"{DEFAULT_STATE}, or a managed plugin's" if found else str(DEFAULT_STATE)
    p.add_argument("--state", type=Path, default=None if found else DEFAULT_STATE,
                   help=f"SQLite state file (default {default})")
    if not found:
        p.add_argument("--store", dest="state", type=_store, metavar="sqlite:PATH",
                       help=f"where the state lives; sqlite:PATH is the only kind (default sqlite:{default})")
        return
    p.add_argument("--store", type=_serve_store, action=_StoreAction, metavar="sqlite:PATH|etcd://HOST:PORT[,...]",
                   help=f"sqlite:PATH: the state file (default sqlite:{default}); etcd://...: the cluster's etcd "
                   "(default: the one the daemon recorded at start, <state>.cluster.json)")
    p.set_defaults(store=None)
    p.add_argument("--etcd-cacert", type=Path, metavar="FILE", help="CA certificate for etcd (default: the daemon's)")
    p.add_argument("--etcd-cert", type=Path, metavar="FILE", help="client certificate for etcd (default: the daemon's)")
    p.add_argument("--etcd-key", type=Path, metavar="FILE", help="client key for etcd (default: the daemon's)")


def _target_options(p: argparse.ArgumentParser) -> None:
    """How status and check find the daemon when no --socket/--state is given."""
    p.add_argument("--docker-data-root", type=Path, default=DEFAULT_DOCKER_DATA_ROOT,
                   help="dockerd's --data-root, where its managed plugins are recorded; used when the legacy "
                   f"socket {DEFAULT_SOCKET} is absent (default {DEFAULT_DOCKER_DATA_ROOT})")
    p.add_argument("--plugin", metavar="NAME:TAG",
                   help="the managed pynetdrv plugin to look at, when several are installed "
                   "(e.g. pynetdrv/pynetdrv:latest)")


def _store(text: str) -> Path:
    try:
        path = parse_store(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    assert isinstance(path, Path)
    return path


def _serve_store(text: str) -> Path | str:
    try:
        return parse_store(text, etcd=True)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


class _StoreAction(argparse.Action):
    """``--store sqlite:PATH`` is ``--state PATH`` (the last one given wins); ``etcd://`` goes to ``store``."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        if isinstance(values, Path):
            namespace.state = values
        else:
            namespace.store = values


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a UDP port (1-65535)")
    return int(text)


def cluster_settings(args: argparse.Namespace) -> ClusterSettings | None:
    """status/check: the daemon's recorded cluster settings, overridden by the command line's."""
    from pynetdrv.cluster.settings import resolve_settings

    return resolve_settings(args.state, args.store, args.etcd_cacert, args.etcd_cert, args.etcd_key)


async def _status(state: Path, docker_socket: Path | None, cluster: ClusterSettings | None = None) -> str:
    from pynetdrv.docker_names import read_network_names
    from pynetdrv.status import render_status
    from pynetdrv.store.open import open_store

    names = None
    if docker_socket is not None:
        docker = await read_network_names(docker_socket)
        if docker.unavailable:
            print(f"pynetdrv: showing network IDs only: {docker.unavailable}", file=sys.stderr)
        names = docker.names
    store = await open_store(Config(state=state))
    try:
        text = await render_status(store, names)
    finally:
        await store.close()
    if cluster is None:
        return text
    from pynetdrv.registry.inventory import read_inventory, render_inventory
    from pynetdrv.registry.readonly import EtcdAway, read_cluster

    try:
        inventory = await read_cluster(cluster, read_inventory)
    except EtcdAway as e:
        print(f"pynetdrv: showing this host's view only: {e}", file=sys.stderr)
        return text
    return "\n".join([text, "", *render_inventory(inventory)])


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"{text} is out of range (0-86400 seconds)")
    return value


def _default_pool(text: str) -> DefaultPool:
    try:
        return DefaultPool.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("status", "check"):
        try:
            target = locate(args.socket, args.state, args.docker_data_root, args.plugin)
        except ValueError as e:
            print(f"pynetdrv: {e}", file=sys.stderr)
            return 2 if args.command == "check" else 1
        if target.found:
            print(f"pynetdrv: {args.command} of {target.found}: socket {target.socket}, state {target.state}",
                  file=sys.stderr)
        args.socket, args.state, args.driver_names = target.socket, target.state, target.driver_names
    if args.command == "status":
        try:
            cluster = cluster_settings(args)
        except ValueError as e:
            print(f"pynetdrv: {e}", file=sys.stderr)
            return 1
        return _status_command(args.state, None if args.no_docker else args.docker_socket, cluster)
    if args.command == "check":
        from pynetdrv.check.cli import check_command

        return check_command(args)
    if args.command == "cluster":

        return cluster_command(args)
    return _serve_command(args)


def _status_command(state: Path, docker_socket: Path | None, cluster: ClusterSettings | None = None) -> int:
    if not state.exists():
        print(f"pynetdrv: no state file at {state}", file=sys.stderr)
        return 1
    try:
        print(asyncio.run(_status(state, docker_socket, cluster)))
    except StateFileError as e:
        print(f"pynetdrv: {e}", file=sys.stderr)
        return 1
    except PynetdrvError as e:
        print(f"pynetdrv: cannot read state {state}: {e}", file=sys.stderr)
        return 1
    return 0


def _listening_socket(given: Path | None) -> tuple[socket.socket | None, Path]:
    """The socket systemd passed (socket activation) and its path, or None and
    the path to bind.  ValueError: what was passed is unusable, or ``--socket``
    names another path (the driver name would not be the one Docker sees)."""
    from pynetdrv.systemd import activated_unix_socket

    listen = activated_unix_socket()
    if listen is None:
        return None, given or DEFAULT_SOCKET
    passed = Path(listen.getsockname())
    if given is not None and given != passed:
        listen.close()
        raise ValueError(f"--socket {given} but socket activation passed {passed}; leave --socket out or make "
                         "it the unit's ListenStream= path")
    return listen, passed


def configure_logging(level: str) -> None:
    """``level`` for pynetdrv's own loggers; warnings and errors only from the libraries under it:
    pyroute2 at debug logs every netlink message it parses, which made each call to the plugin
    tens of milliseconds slower in the lab (which runs at debug)."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pynetdrv").setLevel(level.upper())


def _serve_command(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print(f"pynetdrv: serve must run as root (it creates bridges, veths and firewall rules, and its socket "
              f"and state file belong to root); running as uid {os.geteuid()}", file=sys.stderr)
        return 1
    configure_logging(args.log_level)
    try:
        listen, socket_path = _listening_socket(args.socket)
        config = _serve_config(args, socket_path)
    except ValueError as e:
        print(f"pynetdrv: {e}", file=sys.stderr)
        return 1
    if args.default_pool:
        config = dataclasses.replace(config, default_pools=tuple(args.default_pool))
    from pynetdrv.server import serve

    try:
        asyncio.run(serve(config, listen=listen))
    except (AlreadyRunning, StateFileError, EtcdConfigError, HostForgotten) as e:
        print(f"pynetdrv: {e}", file=sys.stderr)
        return 1
    except (OSError, RuntimeError, PynetdrvError) as e:
        # Start-up problems (state file unreadable, socket directory not
        # writable, not root): one clear line; the traceback at debug level.
        logging.getLogger("pynetdrv").debug("start-up failed", exc_info=True)
        print(f"pynetdrv: cannot serve on {config.socket} with state {config.state}: {e}", file=sys.stderr)
        return 1
    return 0


def etcd_client_missing() -> str | None:
    """The etcd client's packages (the `etcd` extra) that cannot be imported, or None: checked
    before anything starts, so that cluster mode without them is one line, not a traceback."""
    import importlib.util

    def missing(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is None
        except ValueError:  # in sys.modules as None: imports of it fail
            return True

    gone = [name for name in ("aetcd", "grpc") if missing(name)]
    return " and ".join(gone) if gone else None


def _serve_config(args: argparse.Namespace, socket: Path) -> Config:
    """The daemon's Config from ``serve``'s options; ValueError (one line) names what is wrong."""
    state: Path = args.state
    etcd: str | None = args.store
    cluster_only = {"--advertise-address": args.advertise_address, "--etcd-cacert": args.etcd_cacert,
                    "--etcd-cert": args.etcd_cert, "--etcd-key": args.etcd_key, "--rejoin": args.rejoin or None}
    if etcd is None:
        given = [name for name, value in cluster_only.items() if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: only for cluster mode (--store etcd://HOST:PORT)")
        return Config(socket=socket, state=state, log_level=args.log_level,
                      firewall_check_seconds=args.firewall_check_interval)
    from pynetdrv.cluster.advertise import check_advertise_address
    from pynetdrv.cluster.endpoints import EtcdTls

    missing = etcd_client_missing()
    if missing:
        raise ValueError(f"--store {etcd}: cluster mode needs {missing}, which is not installed here "
                         "(pip install 'pynetdrv[etcd]')")
    address = check_advertise_address(args.advertise_address)
    try:
        EtcdTls.from_options(args.etcd_cacert, args.etcd_cert, args.etcd_key)  # reads and checks the files now
    except EtcdConfigError as e:
        raise ValueError(str(e)) from None
    return Config(socket=socket, state=state, log_level=args.log_level,
                  firewall_check_seconds=args.firewall_check_interval, etcd=etcd, advertise_address=address,
                  etcd_cacert=args.etcd_cacert, etcd_cert=args.etcd_cert, etcd_key=args.etcd_key,
                  vxlan_port=args.vxlan_port, docker_socket=args.serve_docker_socket,
                  create_once=not args.no_create_once, rejoin=args.rejoin,
                  fast_path=not args.no_fast_path)
