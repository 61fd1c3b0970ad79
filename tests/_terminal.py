"""Run the ``jobstatus`` command in a real terminal (a pty of a given size) and read its screen.

``screen()`` replays what the command wrote the way a terminal does, for the
few controls Rich uses (carriage return, line feed, cursor up, erase line), so a
test reads the final frame of a live display as a user sees it.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from dataclasses import dataclass

CONTROL = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")


@dataclass
class Terminal:
    """What a command wrote to its terminal: the raw bytes as text, and its exit code."""

    raw: str
    returncode: int

    @property
    def screen(self) -> str:
        """The terminal's lines once the command ended (trailing spaces removed)."""
        return screen(self.raw)


def run_in_terminal(
    *args: str, columns: int = 100, env: dict[str, str] | None = None, timeout: float = 60
) -> Terminal:
    """Run ``python -m jobstatus ARGS`` with stdin, stdout and stderr on a pty ``columns`` wide."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE")
    }
    environment.update(TERM="xterm-256color", **(env or {}))
    process = subprocess.Popen(
        [sys.executable, "-m", "jobstatus", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=environment,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the command ended and closed its side
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    returncode = process.wait(timeout=timeout)
    return Terminal(b"".join(chunks).decode(errors="replace"), returncode)


def screen(raw: str) -> str:
    """Replay ``raw`` on an endless screen: the lines a user sees at the end."""
    lines: list[list[str]] = [[]]
    row = column = 0
    position = 0
    for match in [*CONTROL.finditer(raw), None]:
        end = match.start() if match else len(raw)
        for char in raw[position:end]:
            if char == "\r":
                column = 0
            elif char == "\n":
                row += 1
                while len(lines) <= row:
                    lines.append([])
            else:
                line = lines[row]
                line.extend(" " * (column - len(line) + 1))
                line[column] = char
                column += 1
        if match is None:
            break
        position = match.end()
        argument, kind = match.groups()
        if kind == "A":  # cursor up
            row = max(row - int(argument or 1), 0)
        elif kind == "K" and argument == "2":  # erase the whole line
            lines[row] = []
    return "\n".join("".join(line).rstrip() for line in lines).strip("\n")


def has_colour(raw: str, text: str, sgr: str) -> bool:
    """Whether ``text`` is written right after the SGR code ``sgr`` (``31`` is red)."""
    return f"\x1b[{sgr}m{text}" in raw
