"""Removing what a queue test's run left in a shared store."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit, urlunsplit


def purge_store(url: str) -> None:
    """Delete the records of a Redis store URL's prefix (SQLite files go with tmp_path)."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("redis"):
        return
    prefix = parse_qs(parts.query).get("prefix", [""])[0]
    if not prefix:
        return
    import redis

    client = redis.Redis.from_url(urlunsplit(parts._replace(query="")))
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
