"""Where Infinibook keeps its files: the user's data and cache directories (platformdirs), and
how a file is written: whole or not at all, on disk before it takes its final name."""

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
        sync_directory(target.parent)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def replace_durably(temporary: str | os.PathLike, target: str | os.PathLike) -> None:
    """Rename a finished temporary file or folder over `target`, its contents flushed to disk first.

    For files written by other code (safetensors, transformers' save_pretrained), which cannot
    be flushed through their own handle as `write_text_atomically` does. A file system may put
    the rename on disk before the data it names: a crash or power cut could then leave an empty
    or partial file under the final name, which the next start would trust (converted model
    weights, an adapter). Flushed first, the final name holds the old version or the whole new
    one; the folder holding it is flushed after, so that the rename itself lasts."""
    temporary = Path(temporary)
    if temporary.is_dir():
        for folder, _, files in os.walk(temporary, topdown=False):
            for name in files:
                _fsync_file(Path(folder, name))
            sync_directory(folder)
    else:
        _fsync_file(temporary)
    os.replace(temporary, target)
    sync_directory(Path(target).parent)


def _fsync_file(path: Path) -> None:
    # opened for writing: Windows flushes a file only through a handle that may write it
    descriptor = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def sync_directory(path: str | os.PathLike) -> None:
    """Flush a folder's entries (files created or renamed into it) to disk where a folder can be
    opened for that (POSIX); Windows cannot (no O_DIRECTORY) and its file system's journal keeps
    the rename."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:  # some file systems cannot flush a folder (EINVAL); the files are flushed anyway
        pass
    finally:
        os.close(descriptor)
