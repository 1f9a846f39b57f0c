"""The operators' web page and HTTP API: a thin Flask adapter over the core."""

from warehouse_web.app import create_app

__all__ = ["create_app"]
