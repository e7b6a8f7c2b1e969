"""Containers dockerd starts again after its own restart get their addresses back.

Docker gives an IPAM driver no container identity: RequestAddress names a pool and, at most,
an address the user asked for (``--ip``).  When dockerd starts again (after a crash, a host
reboot, a lost cluster host's return) it first deletes every stale endpoint and releases its
addresses, then starts the containers whose restart policy says so, each asking for *any*
address: round robin alone gives each a new one, and whoever reached it by address loses it.

    record   which of this host's addresses belong to a container dockerd starts again
             (restart policy), saved next to the state file so it outlives a reboot
    watch    keeps the record current from the Engine API, in the background (never from a
             request handler: dockerd may be waiting on us)
    keep     after dockerd's start, its releases of such addresses are kept and given back
             to the pool's next automatic request, when that can only be the same container
"""
