"""Integration tests against the real dockerd (see conftest.py). Their helpers, by what they own:

- constants.py         names and paths: docker client, image, plugin, labels, link prefixes
- cmd.py               run() / Out / CommandError, and wait_for() (every wait is a bounded poll)
- processes.py         /proc: process state, command line, children; end_process()
- pynetdrv_daemon.py   PynetdrvDaemon, the plugin socket client, an aborted run's leftover daemons
- dockerd.py           the engine under test: docker_answers(), its DockerdProcess record, restarts
- docker_objects.py    docker() client, Network / Container wrappers, ping(), cleanup of test objects
- host.py              links, addresses, netns, routes, iptables on the host; the leak check leaks()
- subnet_allocator.py  SubnetAllocator: test subnets free of host routes and docker networks

Everything there talks to the real system: the docker client of the engine under test
($PYNETDRV_IT_DOCKER, set by ./scripts/test; by default /usr/bin/docker, the client matching
Debian's engine), `ip`, `iptables-save`, /proc and /sys.
"""
