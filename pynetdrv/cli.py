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
    _state_options(s)
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    s.add_argument("--default-pool", action="append", metavar="base=CIDR,size=N", type=_default_pool,
                   help="range automatic pools are carved from; repeatable, both families "
                   f"(default {' and '.join(DEFAULT_POOLS_V4 + DEFAULT_POOLS_V6)})")
    s.add_argument("--firewall-check-interval", type=_seconds, default=30.0, metavar="SECONDS",
                   help="how often the iptables rules are compared with the state and repaired (default 30; "
                   "0 turns the check off)")
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
    p.add_argument("--store", dest="state", type=_store, metavar="sqlite:PATH",
                   help=f"where the state lives; sqlite:PATH is the only kind (default sqlite:{default})")


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
        return parse_store(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


async def _status(state: Path, docker_socket: Path | None) -> str:
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
        return await render_status(store, names)
    finally:
        await store.close()


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
        return _status_command(args.state, None if args.no_docker else args.docker_socket)
    if args.command == "check":
        from pynetdrv.check.cli import check_command

        return check_command(args)
    return _serve_command(args)


def _status_command(state: Path, docker_socket: Path | None) -> int:
    if not state.exists():
        print(f"pynetdrv: no state file at {state}", file=sys.stderr)
        return 1
    try:
        print(asyncio.run(_status(state, docker_socket)))
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


def _serve_command(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print(f"pynetdrv: serve must run as root (it creates bridges, veths and firewall rules, and its socket "
              f"and state file belong to root); running as uid {os.geteuid()}", file=sys.stderr)
        return 1
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        listen, socket_path = _listening_socket(args.socket)
    except ValueError as e:
        print(f"pynetdrv: {e}", file=sys.stderr)
        return 1
    config = Config(socket=socket_path, state=args.state, log_level=args.log_level,
                    firewall_check_seconds=args.firewall_check_interval)
    if args.default_pool:
        config = dataclasses.replace(config, default_pools=tuple(args.default_pool))
    from pynetdrv.server import serve

    try:
        asyncio.run(serve(config, listen=listen))
    except (AlreadyRunning, StateFileError) as e:
        print(f"pynetdrv: {e}", file=sys.stderr)
        return 1
    except (OSError, RuntimeError, PynetdrvError) as e:
        # Start-up problems (state file unreadable, socket directory not
        # writable, not root): one clear line; the traceback at debug level.
        logging.getLogger("pynetdrv").debug("start-up failed", exc_info=True)
        print(f"pynetdrv: cannot serve on {config.socket} with state {config.state}: {e}", file=sys.stderr)
        return 1
    return 0
