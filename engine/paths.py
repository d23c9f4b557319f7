"""Where Infinibook keeps its files: the user's data and cache directories (platformdirs)."""

import os
from pathlib import Path

import platformdirs

APP_NAME = "infinibook"


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The library's directory: an explicit override, then $INFINIBOOK_DATA_DIR, then the OS default."""
    chosen = override or os.environ.get("INFINIBOOK_DATA_DIR")
    path = Path(chosen) if chosen else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Converted model weights live here; deleting it only costs a re-conversion."""
    chosen = os.environ.get("INFINIBOOK_CACHE_DIR")
    path = Path(chosen) if chosen else Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path
