"""The NetworkDriver: networks, endpoints, join/leave."""
