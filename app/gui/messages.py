"""Engine messages worded for the window.

The engine's sentences end with what to do on the command line (`--restart`, `infinibook list`,
`--data-dir`); the window shows the same sentence with its own menus and settings instead.
"""

from __future__ import annotations

import re

# (pattern, replacement), applied in order; each names the window's way of doing the same thing.
_FOR_WINDOW: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"\(ingest with --restart\)", "(Book › Re-read from the start)"),
        (r"\(infinibook ingest\)", "(Book › Read / resume reading)"),
        (r"`infinibook list` shows the (?:ids|books in the library)", "choose a book in the library list"),
        (r"with `infinibook add`", "with File › Add book…"),
        (r"with --data-dir", "in Settings"),
        (r"choose a model with --model", "choose a model in Settings"),
        (r"use --device cpu", "choose the CPU device in Settings"),
        (r" \(hub downloads need --allow-download and a network\)", " in Settings"),
    )
)


def for_window(message: str) -> str:
    """`message` with its command-line advice replaced by the window's."""
    for pattern, replacement in _FOR_WINDOW:
        message = pattern.sub(replacement, message)
    return message
