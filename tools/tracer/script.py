"""The user actions the tracer records, as `docker` command lines (and two special steps:
restarting the tracer itself, restarting dockerd). Every name starts with ``trc-`` so that a
run can clean up after itself, and after an earlier run that was cut short.

The ``calls`` scenario covers what the wire-format tests need: networks with our IPAM and
without it, every `network create` option we read (--subnet, --ip-range, --gateway,
--aux-address, -o, --label, --ipam-opt, --ipv6, --internal), Docker's bridge with our IPAM,
run with --ip/-p/--expose/--hostname, connect/disconnect, stop/start/restart, rm, network
rm, and a plugin restart while a network is in use. ``daemon-restart`` is a graceful
dockerd restart and a SIGKILL + start with a ``--restart always`` container on a tracer
network; its trace ends with the network and the container still there."""

from __future__ import annotations

from dataclasses import dataclass

PLUGIN_RESTART = "plugin killed and restarted"
DOCKERD_TERM = "dockerd restart (SIGTERM, start again), container trc-r1 has --restart always"
DOCKERD_KILL = "dockerd SIGKILL, start again, container trc-r1 has --restart always"

IMAGE = "local/busybox:latest"
SLEEP = ["sleep", "600"]


@dataclass(frozen=True)
class Step:
    """One user action: `docker <args>` (args with IMAGE where the image goes), or a special
    step (``special`` names it; args empty)."""

    args: tuple[str, ...] = ()
    special: str = ""
    wait_running: str = ""  # after the step, wait until this container runs again

    def text(self, image: str) -> str:
        return self.special or "docker " + " ".join(image if a == IMAGE else a for a in self.args)


def docker(cmd: str, *tail: str) -> Step:
    return Step((*cmd.split(), *tail))


N2_OPTS = ("--subnet 10.20.0.0/16 --ip-range 10.20.5.0/24 --gateway 10.20.0.254 --aux-address host1=10.20.0.10 "
           "-o mtu=1400 -o foo=bar --label l=v --ipam-opt ipamkey=ipamval")
NETWORKS = ("trc-n1", "trc-n2", "trc-n3", "trc-n4", "trc-n5-default-ipam", "trc-n6-bridge-with-our-ipam")

CALLS = (
    docker("network create -d tracer --ipam-driver tracer trc-n1"),
    docker(f"network create -d tracer --ipam-driver tracer {N2_OPTS} trc-n2"),
    docker("network create -d tracer --ipam-driver tracer --ipv6 --subnet 10.30.0.0/24 --subnet fd00:30::/64 trc-n3"),
    docker("network create -d tracer --ipam-driver tracer --internal --subnet 10.40.0.0/24 trc-n4"),
    docker("network create -d tracer --subnet 10.50.0.0/24 trc-n5-default-ipam"),
    docker("network create -d bridge --ipam-driver tracer --subnet 10.60.0.0/24 trc-n6-bridge-with-our-ipam"),
    docker("run -d --name trc-c1 --net trc-n2", IMAGE, *SLEEP),
    docker("run -d --name trc-c2 --net trc-n2 --ip 10.20.5.77 -p 8080:80 -p 9999:53/udp --expose 7000 "
           "--hostname hc2", IMAGE, *SLEEP),
    docker("run -d --name trc-c3 --net trc-n3", IMAGE, *SLEEP),
    docker("network connect trc-n1 trc-c1"),
    docker("network connect --ip 10.20.5.88 --alias web trc-n2 trc-c3"),
    docker("network disconnect trc-n1 trc-c1"),
    docker("stop -t 1 trc-c1"),
    docker("start trc-c1"),
    docker("restart -t 1 trc-c2"),
    docker("rm -f trc-c1 trc-c2 trc-c3"),
    docker("run --rm --net trc-n6-bridge-with-our-ipam", IMAGE, "true"),
    docker("network rm", *NETWORKS),
    docker("network create -d tracer --ipam-driver tracer --subnet 10.70.0.0/24 trc-n7"),
    docker("run -d --name trc-c7 --net trc-n7", IMAGE, *SLEEP),
    Step(special=PLUGIN_RESTART),
    docker("run -d --name trc-c8 --net trc-n7", IMAGE, *SLEEP),
    docker("rm -f trc-c7 trc-c8"),
    docker("network rm trc-n7"),
)

DAEMON_RESTART = (
    docker("network create -d tracer --ipam-driver tracer --subnet 10.80.0.0/24 trc-nr"),
    docker("run -d --restart always --stop-timeout 1 --name trc-r1 --net trc-nr", IMAGE, *SLEEP),
    Step(special=DOCKERD_TERM, wait_running="trc-r1"),
    Step(special=DOCKERD_KILL, wait_running="trc-r1"),
)

SCENARIOS = {"calls": CALLS, "daemon-restart": DAEMON_RESTART}

#: What a run removes before it starts and after it ends (not recorded).
CONTAINERS = ("trc-c1", "trc-c2", "trc-c3", "trc-c7", "trc-c8", "trc-r1")
ALL_NETWORKS = (*NETWORKS, "trc-n7", "trc-nr")
