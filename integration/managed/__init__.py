"""Integration tests of pynetdrv as a managed (v2) plugin: its lifecycle and the core scenarios."""
