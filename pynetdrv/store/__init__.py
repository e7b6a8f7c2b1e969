"""Persistent state: networks, endpoints, pools and address allocations."""
