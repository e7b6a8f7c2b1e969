"""Create once (cluster mode): a network created on one host appears on every host's Docker, and a
``docker network rm`` on one host removes it everywhere once no container uses it (docs/create-once.md).

- ``catalog``: the shared catalog of cluster networks in etcd (``<prefix>catalog/<name>``);
- ``plan``: pure planning, what this host must create, remove or write to the catalog;
- ``engine``: the local Docker Engine API (unix socket), used only by the background sync;
- ``sync``: the background component that watches both and carries the plan out.
"""
