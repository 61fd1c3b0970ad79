"""Argument types and options that several commands share; a bad value is a usage error (2)."""

from __future__ import annotations

import argparse

from .._record import validate_job_id


def job_id(text: str) -> str:
    """An argparse type: a valid job id (non-empty, at most 512 characters, no controls)."""
    try:
        return validate_job_id(text)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds; got {text}")
    return value


def add_stale_after(parser: argparse.ArgumentParser) -> None:
    """``--stale-after SECONDS``, for the commands that mark stale jobs."""
    parser.add_argument(
        "--stale-after",
        type=positive_seconds,
        metavar="SECONDS",
        help="a working job silent this long reads as stale (default: configure()'s "
        "stale_after, 60); give the value your workers run with",
    )
