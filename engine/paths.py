"""Where Infinibook keeps its files: the user's data and cache directories (platformdirs), and
how a file the person chose is written (whole, or not at all)."""

import os
import secrets
import stat
from pathlib import Path

import platformdirs

APP_NAME = "infinibook"


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The library's directory: an explicit override, then $INFINIBOOK_DATA_DIR, then the OS default."""
    chosen = override or os.environ.get("INFINIBOOK_DATA_DIR")
    path = _expand(chosen) if chosen else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Converted model weights live here; deleting it only costs a re-conversion."""
    chosen = os.environ.get("INFINIBOOK_CACHE_DIR")
    path = _expand(chosen) if chosen else Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _expand(chosen: str | os.PathLike) -> Path:
    """A leading ~ is the home folder: no shell expands it in `--data-dir=~/x`, a settings field
    or a launcher's environment, and a literal "~" folder would hold a second, empty library."""
    return Path(chosen).expanduser()


def write_text_atomically(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `path` through a temporary file in the same folder, renamed over it at the end.

    Opening `path` for writing would empty it first: a write failing part-way (full disk,
    unencodable text, Ctrl-C) would destroy the file it was meant to replace. Here the old file
    stays as it was until the new one is complete, and the temporary file is removed on failure.
    A symbolic link is written through to its target; a device or pipe (/dev/stdout) cannot be
    renamed over and is written directly."""
    target = Path(path).resolve()
    if target.exists() and not target.is_file():
        with open(target, "w", encoding=encoding) as handle:
            handle.write(text)
        return
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    # os.open with 0o666 gives the new file the permissions (umask) an ordinary open would
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with open(descriptor, "w", encoding=encoding) as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())  # on disk before the rename: a crash never leaves an empty file
        if target.exists():  # the person's permissions on the file replaced stay
            temporary.chmod(stat.S_IMODE(target.stat().st_mode))
        temporary.replace(target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
