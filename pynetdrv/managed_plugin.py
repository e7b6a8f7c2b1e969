"""The entrypoint of the managed (v2) plugin: ``python3 -m pynetdrv.managed_plugin``.

plugin/config.json runs this inside the plugin's rootfs.  It turns the plugin's
settable environment (``docker plugin set NAME PYNETDRV_LOG_LEVEL=debug``) into
``pynetdrv serve`` options, points the iptables commands of the rootfs at the
host's backend, makes sysctls go through the host's /proc/sys mount (the
plugin's own /proc/sys is read-only), then runs ``serve``.  The raw ``args``
setting is appended last, so a flag given there wins over the environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

# Where the entrypoint serves (see plugin_layout); re-exported for its users.
from pynetdrv.plugin_layout import PLUGIN_SOCKET as PLUGIN_SOCKET
from pynetdrv.plugin_layout import PLUGIN_STATE_DIR as PLUGIN_STATE_DIR
from pynetdrv.plugin_layout import PLUGIN_STORE as PLUGIN_STORE

#: Environment variable -> ``pynetdrv serve`` flag.
ENV_FLAGS = {
    "PYNETDRV_LOG_LEVEL": "--log-level",
    "PYNETDRV_STORE": "--store",
    "PYNETDRV_FIREWALL_CHECK_INTERVAL": "--firewall-check-interval",
    "PYNETDRV_ADVERTISE_ADDRESS": "--advertise-address",
}
#: Space-separated list, one ``--default-pool`` each.
POOLS_ENV = "PYNETDRV_DEFAULT_POOLS"
IPTABLES_ENV = "PYNETDRV_IPTABLES"
PROC_SYS_ENV = "PYNETDRV_PROC_SYS"
BACKENDS = ("legacy", "nft")


def serve_argv(env: Mapping[str, str], extra: Sequence[str], serve_flags: frozenset[str]) -> list[str]:
    """The ``pynetdrv`` command line for this environment.  ValueError names a
    setting that this pynetdrv's ``serve`` has no option for (e.g. the
    advertise address of multi-host before that exists)."""
    argv = ["serve", "--socket", str(PLUGIN_SOCKET), "--store", PLUGIN_STORE]
    for name, flag in ENV_FLAGS.items():
        value = env.get(name, "").strip()
        if not value:
            continue
        if flag not in serve_flags:
            raise ValueError(f"{name}={value!r}: this pynetdrv's serve has no {flag} option")
        argv += [flag, value]
    for pool in env.get(POOLS_ENV, "").split():
        argv += ["--default-pool", pool]
    argv += [a for a in extra if a]
    cluster = _cluster_store(argv)
    if cluster:
        raise ValueError(f"--store {cluster}: multi-host (an etcd store) is not available in the managed plugin yet "
                         "(its rootfs has no etcd client, and create-once needs the Engine API socket, which it "
                         "does not mount); run pynetdrv as a service on each host for it (docs/multihost.md)")
    return argv


def _cluster_store(argv: Sequence[str]) -> str | None:
    """The etcd:// URL the last --store of `argv` names, if it does (serve takes the last one)."""
    url = None
    for i, arg in enumerate(argv):
        value = argv[i + 1] if arg == "--store" and i + 1 < len(argv) else arg.partition("--store=")[2]
        if arg == "--store" or arg.startswith("--store="):
            url = value
    return url if url and url.startswith("etcd://") else None


def count_rules(save_output: str) -> int:
    """Rules (``-A ...`` lines) in an iptables-save dump."""
    return sum(1 for line in save_output.splitlines() if line.startswith("-A "))


def pick_backend(setting: str, legacy_rules: int, nft_rules: int, legacy_tables_loaded: bool) -> str:
    """The iptables backend to use: the setting if it names one; for ``auto``
    the one holding more rules (as kubernetes-sigs/iptables-wrappers does: the
    host's rules, dockerd's among them, are where the host's iptables writes).
    With no rules anywhere (a fresh boot) legacy if its tables are loaded in
    the kernel, else nft (Debian's default)."""
    if setting in BACKENDS:
        return setting
    if setting != "auto":
        raise ValueError(f"{IPTABLES_ENV}={setting!r}: expected auto, legacy or nft")
    if legacy_rules != nft_rules:
        return "legacy" if legacy_rules > nft_rules else "nft"
    return "legacy" if legacy_tables_loaded else "nft"


def _save_rules(variant: str) -> int:
    total = 0
    for tool in (f"iptables-{variant}-save", f"ip6tables-{variant}-save"):
        try:
            out = subprocess.run([tool], capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        total += count_rules(out.stdout)
    return total


def _legacy_tables_loaded() -> bool:
    try:
        return bool(Path("/proc/net/ip_tables_names").read_text().strip())
    except OSError:
        return False


def use_backend(backend: str, run: Callable[[list[str]], None]) -> None:
    """Point the rootfs's ``iptables``/``ip6tables`` at ``backend`` (Debian alternatives)."""
    for tool in ("iptables", "ip6tables"):
        run(["update-alternatives", "--quiet", "--set", tool, f"/usr/sbin/{tool}-{backend}"])


def _run(argv: list[str]) -> None:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    if out.returncode != 0:
        raise OSError(f"{' '.join(argv)} failed: {out.stderr.strip() or out.returncode}")


def _serve_flags() -> frozenset[str]:
    import argparse

    from pynetdrv.cli import _parser

    for action in _parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            serve = action.choices["serve"]
            return frozenset(s for a in serve._actions for s in a.option_strings)
    raise RuntimeError("pynetdrv's command line has no serve command")


def main(extra: Sequence[str] | None = None) -> int:
    env = os.environ
    try:
        argv = serve_argv(env, sys.argv[1:] if extra is None else extra, _serve_flags())
        setting = env.get(IPTABLES_ENV, "auto").strip() or "auto"
        backend = pick_backend(setting, *((_save_rules("legacy"), _save_rules("nft"), _legacy_tables_loaded())
                                          if setting == "auto" else (0, 0, False)))
        use_backend(backend, _run)
        proc_sys = env.get(PROC_SYS_ENV, "").strip()
        if proc_sys:
            if not Path(proc_sys, "net").is_dir():
                raise ValueError(f"{PROC_SYS_ENV}={proc_sys!r}: no net/ under it (is the host's /proc/sys mounted?)")
            # The one place sysctls are written (dataplane.sysctl) reads this at each write.
            from pynetdrv.dataplane import sysctl

            sysctl.PROC_SYS = Path(proc_sys)
    except (ValueError, OSError, RuntimeError) as e:
        print(f"pynetdrv plugin: {e}", file=sys.stderr)
        return 1
    print(f"pynetdrv plugin: iptables backend {backend} ({setting}); pynetdrv {' '.join(argv)}", file=sys.stderr)
    from pynetdrv.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
