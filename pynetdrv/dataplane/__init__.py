"""Kernel side of pynetdrv: bridges, veth pairs and firewall rules."""
