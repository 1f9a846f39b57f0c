"""The warehouse invoice service's core: use cases against ports, and the real adapters."""
