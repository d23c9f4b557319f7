"""Where Infinibook keeps its files: the user's data and cache directories (platformdirs)."""

import os
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
