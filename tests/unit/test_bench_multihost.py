"""The multi-host benchmark's pure parts (bench/multihost_figures.py, bench/multihost_probe.py):
iperf3's JSON as iperf3 3.12 wrote it here, the prober's ICMP packets as this kernel sent them,
its output, the percentiles and the figures with their targets.  No lab, no timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.multihost_figures import (
    BRIDGE,
    OVERLAY,
    PYNETDRV,
    UNDERLAY,
    IperfError,
    iperf_gbits,
    iperf_retransmits,
    reach_figures,
    reach_samples,
    start_figures,
    throughput_figures,
)
from bench.multihost_probe import checksum, echo_request, is_reply, parse_output
from bench.netns import throwaway_netns
from bench.report import Figure

REPO = Path(__file__).resolve().parents[2]

#: `iperf3 -c 127.0.0.1 -t 1 -i 0.5 -J` (iperf 3.12, Debian 12), in a throwaway namespace.
IPERF_JSON = """\
{
 "start": {
  "connected": [
   {
    "socket": 5,
    "local_host": "127.0.0.1",
    "local_port": 49576,
    "remote_host": "127.0.0.1",
    "remote_port": 5299
   }
  ],
  "version": "iperf 3.12",
  "system_info": "Linux vm 6.18.44-fc-v1272 #1 SMP PREEMPT_DYNAMIC @0 x86_64",
  "timestamp": {
   "time": "Sun, 06 Dec 2026 06:13:31 GMT",
   "timesecs": 1796537611
  },
  "connecting_to": {
   "host": "127.0.0.1",
   "port": 5299
  },
  "cookie": "qdb7cwbpu76uxlcok5i3jtxvf2s47g66jn4v",
  "tcp_mss_default": 32768,
  "target_bitrate": 0,
  "sock_bufsize": 0,
  "sndbuf_actual": 16384,
  "rcvbuf_actual": 131072,
  "test_start": {
   "protocol": "TCP",
   "num_streams": 1,
   "blksize": 131072,
   "omit": 0,
   "duration": 1,
   "bytes": 0,
   "blocks": 0,
   "reverse": 0,
   "tos": 0,
   "target_bitrate": 0
  }
 },
 "intervals": [
  {
   "streams": [
    {
     "socket": 5,
     "start": 0,
     "end": 0.500216,
     "seconds": 0.500216007232666,
     "bytes": 887357440,
     "bits_per_second": 14191588068.6683,
     "retransmits": 7,
     "snd_cwnd": 1309660,
     "snd_wnd": 17698816,
     "rtt": 133,
     "rttvar": 85,
     "pmtu": 65535,
     "omitted": false,
     "sender": true
    }
   ],
   "sum": {
    "start": 0,
    "end": 0.500216,
    "seconds": 0.500216007232666,
    "bytes": 887357440,
    "bits_per_second": 14191588068.6683,
    "retransmits": 7,
    "omitted": false,
    "sender": true
   }
  },
  {
   "streams": [
    {
     "socket": 5,
     "start": 0.500216,
     "end": 1.000146,
     "seconds": 0.4999299943447113,
     "bytes": 515112960,
     "bits_per_second": 8242961467.83815,
     "retransmits": 1,
     "snd_cwnd": 2488354,
     "snd_wnd": 19379200,
     "rtt": 189,
     "rttvar": 181,
     "pmtu": 65535,
     "omitted": false,
     "sender": true
    }
   ],
   "sum": {
    "start": 0.500216,
    "end": 1.000146,
    "seconds": 0.4999299943447113,
    "bytes": 515112960,
    "bits_per_second": 8242961467.83815,
    "retransmits": 1,
    "omitted": false,
    "sender": true
   }
  }
 ],
 "end": {
  "streams": [
   {
    "sender": {
     "socket": 5,
     "start": 0,
     "end": 1.000146,
     "seconds": 1.000146,
     "bytes": 1402470400,
     "bits_per_second": 11218125353.69836,
     "retransmits": 8,
     "max_snd_cwnd": 2488354,
     "max_snd_wnd": 19379200,
     "max_rtt": 189,
     "min_rtt": 133,
     "mean_rtt": 161,
     "sender": true
    },
    "receiver": {
     "socket": 5,
     "start": 0,
     "end": 1.001178,
     "seconds": 1.000146,
     "bytes": 1401159680,
     "bits_per_second": 11196088447.808483,
     "sender": true
    }
   }
  ],
  "sum_sent": {
   "start": 0,
   "end": 1.000146,
   "seconds": 1.000146,
   "bytes": 1402470400,
   "bits_per_second": 11218125353.69836,
   "retransmits": 8,
   "sender": true
  },
  "sum_received": {
   "start": 0,
   "end": 1.001178,
   "seconds": 1.001178,
   "bytes": 1401159680,
   "bits_per_second": 11196088447.808483,
   "sender": true
  },
  "cpu_utilization_percent": {
   "host_total": 30.4828983886748,
   "host_user": 1.2040013577461415,
   "host_system": 29.27899686520376,
   "remote_total": 26.39789209996944,
   "remote_user": 0.498209123978961,
   "remote_system": 25.89948321290949
  },
  "sender_tcp_congestion": "bbr",
  "receiver_tcp_congestion": "bbr"
 }
}
"""
#: The same client with no server listening (iperf3 still exits 0 and writes JSON).
IPERF_REFUSED = """\
{
	"start":	{
		"connected":	[],
		"version":	"iperf 3.12",
		"system_info":	"Linux vm 6.18.44-fc-v1272 #1 SMP PREEMPT_DYNAMIC @0 x86_64"
	},
	"intervals":	[],
	"end":	{
	},
	"error":	"unable to connect to server: Connection refused"
}"""
#: A raw ICMP socket's view of `echo_request(0x1234, 7)` to 127.0.0.1: its own request, then the
#: kernel's reply (IPv4 header included), captured on this machine.
OWN_REQUEST = bytes.fromhex("4500002accd3400040016ffd7f0000017f000001080029d21234000770796e65746472762d62656e6368")
REPLY = bytes.fromhex("4500002accd400004001affc7f0000017f000001000031d21234000770796e65746472762d62656e6368")


def test_iperf_throughput_is_the_receivers_bits_per_second() -> None:
    assert iperf_gbits(IPERF_JSON) == pytest.approx(11196088447.808483 / 1e9)
    assert iperf_retransmits(IPERF_JSON) == 8


def test_iperf_error_is_raised_with_iperfs_message() -> None:
    with pytest.raises(IperfError, match="Connection refused"):
        iperf_gbits(IPERF_REFUSED)
    with pytest.raises(IperfError, match="sum_received"):
        iperf_gbits(json.dumps({"start": {}, "intervals": [], "end": {}}))


def test_echo_request_is_what_was_sent_and_the_kernel_accepted() -> None:
    assert echo_request(0x1234, 7) == OWN_REQUEST[20:]
    assert checksum(REPLY[20:22] + b"\0\0" + REPLY[24:]) == 0x31D2  # the kernel's own checksum
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D  # RFC 1071's worked example


@pytest.mark.parametrize(("packet", "ident", "expected"), [
    (REPLY, 0x1234, True),
    (REPLY, 0x1235, False),       # another prober's reply
    (OWN_REQUEST, 0x1234, False),  # the raw socket also sees our own request
    (REPLY[:24], 0x1234, False),   # truncated
])
def test_is_reply(packet: bytes, ident: int, expected: bool) -> None:
    assert is_reply(packet, ident) is expected


def test_probe_output() -> None:
    assert parse_output("ready\nreply 1234.500000\n") == 1234.5
    assert parse_output("ready\ntimeout\n") is None
    with pytest.raises(ValueError, match="neither"):
        parse_output("ready\n")


def test_probe_reaches_loopback_and_times_out_on_nobody() -> None:
    """The prober itself, in a throwaway namespace (root, like the netns tests) with an `eth0` (a veth) for its
    ARP setting: a reply from 127.0.0.1, and a timeout for an address nobody holds."""
    with throwaway_netns() as ns:
        subprocess.run(["ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "eth0", "up"], check=True)
        subprocess.run(["ip", "-n", ns, "addr", "add", "10.99.0.1/24", "dev", "eth0"], check=True)

        def probe(address: str, timeout: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "bench.multihost_probe", address,
                                   timeout], cwd=REPO, capture_output=True, text=True, timeout=30, check=False)

        ok = probe("127.0.0.1", "5")
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.startswith("ready\nreply ")
        assert parse_output(ok.stdout) is not None
        lost = probe("10.99.0.2", "0.3")
        assert (lost.returncode, parse_output(lost.stdout)) == (1, None)
        retrans = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/sys/net/ipv4/neigh/eth0/retrans_time_ms"],
                                 capture_output=True, text=True, check=True).stdout
        assert 10 <= int(retrans) < 20  # 10 ms, rounded up to whole jiffies (12 with HZ=250); default 1000


def test_reach_samples_count_the_unreached_as_the_timeout() -> None:
    assert reach_samples([0.5, None, 0.7], 20.0) == [0.5, 20.0, 0.7]


def _by_name(figs: list[Figure]) -> dict[str, Figure]:
    return {f.name: f for f in figs}


def test_throughput_figures_ratios_of_medians_and_targets() -> None:
    # Gbit/s of a quick run in the lab (bench multihost --quick)
    gbits = {PYNETDRV: [8.09, 7.45, 8.73], OVERLAY: [8.95, 8.13, 9.76], UNDERLAY: [7.78, 7.0, 8.56]}
    figs = _by_name(throughput_figures(gbits, 3, {PYNETDRV: 1450, OVERLAY: 1450, UNDERLAY: 1500}))
    vs_overlay = figs["h1->h2 TCP: pynetdrv / overlay"]
    assert vs_overlay.value == pytest.approx(8.09 / 8.95)
    assert (vs_overlay.op, vs_overlay.target, vs_overlay.met) == (">=", 1.0, False)
    vs_underlay = figs["h1->h2 TCP: pynetdrv / underlay"]
    assert vs_underlay.value == pytest.approx(8.09 / 7.78)
    assert (vs_underlay.target, vs_underlay.met) == (0.8, True)
    assert figs["h1->h2 TCP: overlay / underlay"].met is None
    assert "MTU 1450/1450/1500" in vs_overlay.detail
    assert "8.09 (7.45-8.73) Gbit/s" in vs_overlay.detail


def test_start_figures_target_only_pynetdrv() -> None:
    seconds = {PYNETDRV: [1.51, 0.984, 1.7], BRIDGE: [1.38, 0.706, 2.06], OVERLAY: [2.1, 1.67, 2.41]}
    figs = _by_name(start_figures(seconds))
    ours = figs["docker run --rm on h1: pynetdrv / bridge"]
    assert ours.value == pytest.approx(1.51 / 1.38)
    assert (ours.op, ours.target, ours.met) == ("<=", 1.15, True)
    assert "pynetdrv 1,510 (984-1,700) ms" in ours.detail
    theirs = figs["docker run --rm on h1: overlay / bridge"]
    assert theirs.value == pytest.approx(2.1 / 1.38)
    assert theirs.met is None


def test_reach_figures_p50_p99_and_the_unreached() -> None:
    ours = [0.55, 0.52, 0.63] * 33 + [1.12]                  # 100 samples: p99 is the 99th smallest
    theirs = reach_samples([1.69, 1.50, 1.48, None], 20.0)   # one never reached
    figs = _by_name(reach_figures({PYNETDRV: ours, OVERLAY: theirs}, {PYNETDRV: 0, OVERLAY: 1},
                                  {PYNETDRV: [0.59] * 100, OVERLAY: [1.6] * 4}, {OVERLAY: 2}))
    assert figs["reachability p50, pynetdrv"].value == 0.55
    p99 = figs["reachability p99, pynetdrv"]
    assert (p99.value, p99.op, p99.target, p99.met) == (0.63, "<=", 1.0, True)
    over = figs["reachability p99, overlay"]
    assert (over.value, over.met) == (20.0, None)
    assert "1 never reached" in figs["reachability p50, overlay"].detail
    assert "2 docker run failed and retried" in figs["reachability p50, overlay"].detail
    assert "never" not in figs["reachability p50, pynetdrv"].detail
