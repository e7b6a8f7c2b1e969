"""Integration tests against the real dockerd (see conftest.py). Their helpers, by what they own:

- constants.py         names and paths: docker client, image, plugin, labels, link prefixes
- cmd.py               run() / Out / CommandError, and wait_for() (every wait is a bounded poll)
- processes.py         /proc: process state, command line, children; end_process()
- pynetdrv_daemon.py   PynetdrvDaemon, the plugin socket client, an aborted run's leftover daemons
- dockerd.py           the engine under test: docker_answers(), its DockerdProcess record, restarts
- docker_objects.py    docker() client, Network / Container wrappers, ping(), cleanup of test objects
- host.py              links, addresses, netns, routes, iptables on the host; the leak check leaks()
- subnet_allocator.py  SubnetAllocator: test subnets free of host routes and docker networks

The engines the suite runs on, and the runner of ./scripts/test (`python -m integration.matrix`):

- matrix.py            one pytest run per engine: lock, engine switching, timeouts, summary, exit codes
- engines.py           Docker 20.10 (the machine's), 26.1, 28.5: fetch, start, stop; the machine's dockerd
- engine_packages.py   Debian packages of another release unpacked into /opt/pynetdrv-engines (+ Compose)
- engine_processes.py  an engine's dockerd/containerd/shims, found by its exec root; reaping orphans
- busybox_image.py     the test image, imported into each engine

Everything there talks to the real system: the docker client of the engine under test
($PYNETDRV_IT_DOCKER, set by ./scripts/test; by default /usr/bin/docker, the client matching
Debian's engine), `ip`, `iptables-save`, /proc and /sys.
"""
