"""Kernel side of pynetdrv: bridges and veth pairs (the firewall is in pynetdrv.firewall)."""
