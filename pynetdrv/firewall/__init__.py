"""pynetdrv's firewall: what the rules must be (model, render) and how they
reach the kernel (an iptables backend behind the ``Firewall`` protocol)."""
