"""The dockerd call tracer: a stand-in plugin named ``tracer`` that answers every remote
NetworkDriver/IpamDriver call with a valid minimal reply and records it, and the script of
user actions that drives dockerd through it. The recordings are the wire fixtures of the
unit tests (tests/fixtures/traces/). See tools/tracer/README.md."""
