"""Test doubles at the project's clean interfaces (Dataplane, Firewall, PortReserver).

Imported only by tests (and bench, if it ever needs one); never by pynetdrv/
(tests/unit/test_no_fakes_in_production.py checks that)."""
