"""The managed plugin's entrypoint (pynetdrv.managed_plugin) and plugin/config.json:
settings -> `pynetdrv serve` options, the iptables backend choice, and that the
config and the entrypoint agree on the socket, the state mount and the settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pynetdrv.cli import _parser
from pynetdrv.managed_plugin import (
    ENV_FLAGS,
    PLUGIN_SOCKET,
    PLUGIN_STATE_DIR,
    POOLS_ENV,
    _serve_flags,
    count_rules,
    pick_backend,
    serve_argv,
    use_backend,
)
from pynetdrv.plugin_paths import ENTRYPOINT_MODULE

CONFIG = json.loads((Path(__file__).resolve().parents[2] / "plugin" / "config.json").read_text())
TODAY = frozenset({"--socket", "--state", "--store", "--log-level", "--default-pool", "--firewall-check-interval"})
BASE = ["serve", "--socket", str(PLUGIN_SOCKET), "--store", f"sqlite:{PLUGIN_STATE_DIR}/state.db"]


def test_no_settings_is_the_plugin_socket_and_store() -> None:
    assert serve_argv({}, [], TODAY) == BASE


def test_each_setting_becomes_its_option_and_args_come_last() -> None:
    env = {"PYNETDRV_LOG_LEVEL": "debug", "PYNETDRV_STORE": "sqlite:/var/lib/pynetdrv-plugin/b.db",
           "PYNETDRV_FIREWALL_CHECK_INTERVAL": "5", POOLS_ENV: " base=10.1.0.0/16,size=24  base=fd00:1::/48,size=64 ",
           "UNRELATED": "x"}
    assert serve_argv(env, ["--log-level", "warning"], TODAY) == [
        *BASE,
        "--log-level",
        "debug",
        "--store",
        "sqlite:/var/lib/pynetdrv-plugin/b.db",
        "--firewall-check-interval",
        "5",
        "--default-pool",
        "base=10.1.0.0/16,size=24",
        "--default-pool",
        "base=fd00:1::/48,size=64",
        "--log-level",
        "warning",
    ]


def test_empty_settings_are_left_out() -> None:
    assert serve_argv({"PYNETDRV_LOG_LEVEL": " ", "PYNETDRV_ADVERTISE_ADDRESS": ""}, [""], TODAY) == BASE


def test_a_setting_serve_has_no_option_for_is_named() -> None:
    with pytest.raises(ValueError, match=r"PYNETDRV_ADVERTISE_ADDRESS='192\.0\.2\.1'.*--advertise-address"):
        serve_argv({"PYNETDRV_ADVERTISE_ADDRESS": "192.0.2.1"}, [], TODAY)
    assert serve_argv({"PYNETDRV_ADVERTISE_ADDRESS": "192.0.2.1"}, [], TODAY | {"--advertise-address"}) == [
        *BASE,
        "--advertise-address",
        "192.0.2.1",
    ]


def test_the_real_serve_takes_what_the_entrypoint_passes() -> None:
    flags = _serve_flags()
    assert flags >= TODAY
    env = {
        "PYNETDRV_LOG_LEVEL": "debug",
        "PYNETDRV_FIREWALL_CHECK_INTERVAL": "7",
        POOLS_ENV: "base=10.1.0.0/16,size=24",
    }
    args = _parser().parse_args(serve_argv(env, ["--log-level", "warning"], flags))
    assert (args.command, args.socket, args.state) == ("serve", PLUGIN_SOCKET, PLUGIN_STATE_DIR / "state.db")
    assert (args.log_level, args.firewall_check_interval) == ("warning", 7.0)
    assert [str(p.base) for p in args.default_pool] == ["10.1.0.0/16"]


def test_count_rules() -> None:
    dump = (
        "*filter\n:INPUT ACCEPT [0:0]\n:DOCKER - [0:0]\n-A FORWARD -j DOCKER-USER\n-A DOCKER-USER -j RETURN\nCOMMIT\n"
    )
    assert count_rules(dump) == 2
    assert count_rules("") == 0


@pytest.mark.parametrize(("setting", "legacy", "nft", "loaded", "want"), [
    ("auto", 0, 28, False, "nft"),
    ("auto", 12, 3, False, "legacy"),
    ("auto", 0, 0, True, "legacy"),
    ("auto", 0, 0, False, "nft"),
    ("legacy", 0, 99, False, "legacy"),
    ("nft", 99, 0, True, "nft"),
])
def test_pick_backend(setting: str, legacy: int, nft: int, loaded: bool, want: str) -> None:
    assert pick_backend(setting, legacy, nft, loaded) == want


def test_an_unknown_backend_is_named() -> None:
    with pytest.raises(ValueError, match="PYNETDRV_IPTABLES='nftables'"):
        pick_backend("nftables", 0, 0, False)


def test_use_backend_sets_both_alternatives() -> None:
    calls: list[list[str]] = []
    use_backend("legacy", calls.append)
    assert calls == [["update-alternatives", "--quiet", "--set", "iptables", "/usr/sbin/iptables-legacy"],
                     ["update-alternatives", "--quiet", "--set", "ip6tables", "/usr/sbin/ip6tables-legacy"]]


# -- plugin/config.json agrees with the entrypoint -------------------------------------------------


def test_config_runs_the_entrypoint_on_the_socket_it_binds() -> None:
    assert CONFIG["entrypoint"] == ["/usr/bin/python3", "-m", ENTRYPOINT_MODULE]
    assert CONFIG["interface"]["socket"] == PLUGIN_SOCKET.name
    assert PLUGIN_SOCKET.parent == Path("/run/docker/plugins")
    assert sorted(CONFIG["interface"]["types"]) == ["docker.ipamdriver/1.0", "docker.networkdriver/1.0"]
    assert CONFIG["network"]["type"] == "host"


def test_config_asks_for_net_admin_only() -> None:
    # CAP_NET_RAW and CAP_NET_BIND_SERVICE are in Docker's defaults already; no setns, no mount, no modprobe.
    assert CONFIG["linux"]["capabilities"] == ["CAP_NET_ADMIN"]
    assert not CONFIG.get("pidhost") and not CONFIG.get("ipchost")


def test_config_mounts_state_proc_sys_and_the_xtables_lock() -> None:
    mounts = {m["name"]: m for m in CONFIG["mounts"]}
    assert mounts["state"]["destination"] == str(PLUGIN_STATE_DIR)
    assert mounts["state"]["settable"] == ["source"]
    assert (mounts["procsys"]["source"], mounts["procsys"]["destination"]) == ("/proc/sys", "/host/proc/sys")
    assert (mounts["xtableslock"]["source"], mounts["xtableslock"]["destination"]) == ("/run/xtables.lock",) * 2
    for m in CONFIG["mounts"]:
        assert m["type"] == "bind" and {"bind", "rbind"} & set(m["options"]), m  # no options: ENODEV (moby#31222)
        assert "." not in m["name"], m  # `docker plugin set NAME.source=` splits at the last dot


def test_config_env_covers_the_entrypoints_settings() -> None:
    env = {e["name"]: e for e in CONFIG["env"]}
    for name in [*ENV_FLAGS, POOLS_ENV, "PYNETDRV_IPTABLES"]:
        assert env[name]["settable"] == ["value"], name
    assert env["PYNETDRV_PROC_SYS"]["value"] == "/host/proc/sys"
    assert env["PYNETDRV_STORE"]["value"] == f"sqlite:{PLUGIN_STATE_DIR}/state.db"
    assert CONFIG["args"]["settable"] == ["value"]


@pytest.mark.parametrize(("env", "extra"), [
    ({"PYNETDRV_STORE": "etcd://10.0.0.1:2379", "PYNETDRV_ADVERTISE_ADDRESS": "10.0.0.2"}, []),
    ({}, ["--store", "etcd://10.0.0.1:2379"]),
    ({}, ["--store=etcd://10.0.0.1:2379"]),
])
def test_an_etcd_store_is_refused_naming_the_way_to_multi_host(env: dict[str, str], extra: list[str]) -> None:
    with pytest.raises(ValueError) as e:
        serve_argv(env, extra, TODAY | {"--advertise-address"})
    assert str(e.value).startswith("--store etcd://10.0.0.1:2379: multi-host (an etcd store) is not available in "
                                   "the managed plugin yet")
    assert "docs/multihost.md" in str(e.value)


def test_a_later_sqlite_store_in_args_wins_over_an_etcd_setting() -> None:
    argv = serve_argv({"PYNETDRV_STORE": "etcd://10.0.0.1:2379"}, ["--store", "sqlite:/var/lib/pynetdrv-plugin/x.db"],
                      TODAY)
    assert argv[-2:] == ["--store", "sqlite:/var/lib/pynetdrv-plugin/x.db"]
