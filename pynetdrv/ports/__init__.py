"""Published ports: Docker's port bindings parsed and checked (bindings.py),
host ports held so no one else can take them (reserver.py)."""
