"""Store URLs: the query options a store reads itself, and passwords kept out of messages."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from .._errors import ConfigurationError

Parser = Callable[[str, str], Any]  # (option name, text) -> value


def text(name: str, value: str) -> str:
    return value


def seconds(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigurationError(
            f"{name} in the store URL must be a number of seconds; got {value!r}"
        ) from None


def flag(name: str, value: str) -> bool:
    return value.lower() not in ("0", "false", "no", "off")


def count(name: str, value: str) -> int:
    if not value.isdigit():
        raise ConfigurationError(f"{name} in the store URL must be an int; got {value!r}")
    return int(value)


def take_options(
    url: str, options: dict[str, Any], own: Mapping[str, Parser], *, driver_reads_rest: bool
) -> str:
    """Move the store's ``own`` query options from ``url`` into ``options``.

    An option given in the call wins over the one in the URL. Returns the URL
    without them: the driver reads the rest itself (``?sslmode=...``) when
    ``driver_reads_rest``; otherwise any other option is refused.

    Raises:
        ConfigurationError: a malformed value, or an unknown option.
    """
    parts = urlsplit(url)
    kept = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in own:
            options.setdefault(key, own[key](key, value))
        elif driver_reads_rest:
            kept.append((key, value))
        else:
            raise ConfigurationError(
                f"unknown {parts.scheme} URL option {key!r} in {redact(url)!r}; "
                f"known: {', '.join(own)}"
            )
    return parts._replace(query=urlencode(kept)).geturl()


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<malformed URL>"
    if parts.password:
        return parts._replace(
            netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        ).geturl()
    return url
