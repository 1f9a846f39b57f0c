"""The service's use cases; each takes its ports as explicit parameters."""
