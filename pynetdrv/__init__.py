"""pynetdrv: a Docker remote network driver and IPAM driver."""

__version__ = "0.1.0"
