"""The one-machine multi-host lab (issue 12): an underlay switch netns and 3 host netns, each with
its own dockerd + containerd + pynetdrv, etcd in host 1. `sudo ./scripts/lab up|status|test|down`."""
