"""Addresses of this server as the outside world calls it (PUBLIC_BASE_URL)."""

from __future__ import annotations


def public_url(base_url: str, path: str, query: str = "") -> str:
    """The URL Twilio called: PUBLIC_BASE_URL plus the request path and query (never the Host a proxy forwards)."""
    url = base_url.rstrip("/") + path
    return f"{url}?{query}" if query else url
