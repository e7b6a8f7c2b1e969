"""The Docker plugin wire protocol: pydantic models and the HTTP adapter."""
