"""The IPAM driver: pools and addresses."""
