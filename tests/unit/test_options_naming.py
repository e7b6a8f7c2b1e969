"""CreateNetwork option parsing and the kernel names and MACs derived from
Docker's IDs."""

from __future__ import annotations

import re
from typing import Any

import netaddr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pynetdrv.driver.naming import IFNAMSIZ, bridge_name, derived_mac, valid_ifname, veth_names
from pynetdrv.driver.options import (
    BRIDGE_NAME,
    ENABLE_IPV6,
    GENERIC,
    HOST_BINDING_IPV4,
    ICC,
    INTERNAL,
    MASQUERADE,
    MTU,
    parse_network_options,
)
from pynetdrv.errors import InvalidParameter

NID = "fa3c5b26e4d633f0ed05677ce5c371fbdad26153b46ee011a60c4a95cc566069"
EID = "2998f72c5e354322daf63ecba9dc084588134edb492ddc99e317b72693b40d02"

docker_ids = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


# parse_network_options -----------------------------------------------------------------------

def test_the_option_keys_are_dockers() -> None:
    assert (GENERIC, ENABLE_IPV6, INTERNAL) == (
        "com.docker.network.generic", "com.docker.network.enable_ipv6", "com.docker.network.internal")
    assert (BRIDGE_NAME, MTU) == ("com.docker.network.bridge.name", "com.docker.network.driver.mtu")


@pytest.mark.parametrize("options", [{}, {GENERIC: {}}, {GENERIC: None}, {ENABLE_IPV6: False, GENERIC: {}}])
def test_defaults(options: dict[str, Any]) -> None:
    opts = parse_network_options(options)
    assert (opts.bridge_name, opts.mtu, opts.internal, opts.ipv6) == (None, None, False, False)


def test_everything_set() -> None:
    opts = parse_network_options({
        ENABLE_IPV6: True, INTERNAL: True, "com.docker.network.enable_ipv4": True,
        GENERIC: {BRIDGE_NAME: "br-test.1", MTU: "9000"},
    })
    assert (opts.bridge_name, opts.mtu, opts.internal, opts.ipv6) == ("br-test.1", 9000, True, True)


@pytest.mark.parametrize(("value", "want"), [("68", 68), ("65535", 65535), ("1500", 1500), (1450, 1450), ("", None)])
def test_mtu_accepted(value: Any, want: int | None) -> None:
    assert parse_network_options({GENERIC: {MTU: value}}).mtu == want


@pytest.mark.parametrize("value", ["67", "65536", "0", "-1500", "1.5e3", "jumbo", True, [1500]])
def test_mtu_refused(value: Any) -> None:
    with pytest.raises(InvalidParameter) as e:
        parse_network_options({GENERIC: {MTU: value}})
    assert MTU in str(e.value)


def test_unknown_keys_are_all_named_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    opts = parse_network_options({GENERIC: {"mtu": "1400", "foo": "bar", MTU: "1400"}})
    assert opts.unknown == ("foo", "mtu") and opts.mtu == 1400
    (record,) = [r for r in caplog.records if r.levelname == "WARNING"]
    # ...and the message says what would have been right.
    assert "'foo', 'mtu'" in record.getMessage() and BRIDGE_NAME in record.getMessage() and MTU in record.getMessage()


@pytest.mark.parametrize(("value", "want"), [
    ("true", True), ("1", True), ("T", True), ("True", True), ("TRUE", True), (True, True),
    ("false", False), ("0", False), ("f", False), ("False", False), ("FALSE", False), (False, False), ("", True),
])
def test_bridge_booleans_parse_like_docker(value: object, want: bool) -> None:
    for key, attr in ((ICC, "icc"), (MASQUERADE, "masquerade")):
        assert getattr(parse_network_options({GENERIC: {key: value}}), attr) is want


def test_defaults_match_dockers_bridge() -> None:
    opts = parse_network_options({})
    assert (opts.icc, opts.masquerade, opts.host_binding_ipv4, opts.unknown) == (True, True, "0.0.0.0", ())
    assert parse_network_options({GENERIC: {HOST_BINDING_IPV4: "127.0.0.1"}}).host_binding_ipv4 == "127.0.0.1"


def test_top_level_keys_of_newer_engines_are_ignored() -> None:
    # 28.0 adds com.docker.network.enable_ipv4 next to generic, not inside it.
    assert parse_network_options({"com.docker.network.enable_ipv4": True, GENERIC: {}}).mtu is None


@pytest.mark.parametrize("generic", ["mtu=1400", ["mtu"], 5])
def test_generic_must_be_an_object(generic: Any) -> None:
    with pytest.raises(InvalidParameter, match=GENERIC):
        parse_network_options({GENERIC: generic})


@pytest.mark.parametrize("name", ["br0", "a", "x" * IFNAMSIZ, "br-test_1.2", "BR0"])
def test_bridge_name_accepted(name: str) -> None:
    assert parse_network_options({GENERIC: {BRIDGE_NAME: name}}).bridge_name == name


@pytest.mark.parametrize("name", ["x" * (IFNAMSIZ + 1), "br 0", "br/0", "br:0", ".", "..", "brü", "br0\n", "\nbr0", 7])
def test_bridge_name_refused(name: Any) -> None:
    with pytest.raises(InvalidParameter) as e:
        parse_network_options({GENERIC: {BRIDGE_NAME: name}})
    assert BRIDGE_NAME in str(e.value)


# valid_ifname ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "ok"), [
    ("eth0", True), ("eth0.100", True), ("x" * 15, True), ("a-b_c", True),
    ("", False), ("x" * 16, False), (".", False), ("..", False), ("a/b", False), ("a b", False),
    ("a:b", False), ("a\tb", False), ("eth0\n", False), ("x" * 15 + "\n", False),
])
def test_valid_ifname(name: str, ok: bool) -> None:
    assert valid_ifname(name) is ok


# Derived names -------------------------------------------------------------------------------

def test_names_fit_ifnamsiz_and_show_the_short_id() -> None:
    br = bridge_name(NID)
    host, peer = veth_names(EID)
    for name in (br, host, peer):
        assert len(name) <= IFNAMSIZ and valid_ifname(name)
    assert NID[:10] in br  # recognisable next to `docker network ls`
    assert EID[:10] in host and EID[:10] in peer
    assert host != peer and br not in (host, peer)


@settings(max_examples=200)
@given(a=docker_ids, b=docker_ids)
def test_names_are_stable_and_distinct(a: str, b: str) -> None:
    assert bridge_name(a) == bridge_name(a) and veth_names(a) == veth_names(a)
    for name in (bridge_name(a), *veth_names(a)):
        assert len(name) <= IFNAMSIZ and valid_ifname(name)
    if a[:10] != b[:10]:
        assert bridge_name(a) != bridge_name(b)
        assert not set(veth_names(a)) & set(veth_names(b))
    # A bridge and a veth never share a name, whatever the ids.
    assert bridge_name(a) not in veth_names(b)


@settings(max_examples=200)
@given(object_id=st.text(min_size=1, max_size=80))
def test_names_of_arbitrary_ids_are_valid(object_id: str) -> None:
    """IDs that are not Docker hex (tests, other tools) still give valid names."""
    for name in (bridge_name(object_id), *veth_names(object_id)):
        assert len(name) <= IFNAMSIZ and valid_ifname(name)


MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@settings(max_examples=300)
@given(object_id=st.one_of(docker_ids, st.text(min_size=1, max_size=80)))
def test_derived_mac_is_locally_administered_unicast_and_stable(object_id: str) -> None:
    mac = derived_mac(object_id)
    assert MAC_RE.match(mac), mac
    first = netaddr.EUI(mac).words[0]
    assert first & 0x02, "locally administered bit must be set"
    assert not first & 0x01, "must be unicast"
    assert derived_mac(object_id) == mac


def test_derived_macs_differ_per_id() -> None:
    macs = {derived_mac(f"{i:064x}") for i in range(2000)}
    assert len(macs) == 2000
    assert derived_mac(NID) != derived_mac(EID)
