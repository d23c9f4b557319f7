"""Files the window ships with: icon and the sample book (from the source tree or a PyInstaller bundle)."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtGui import QIcon


def resources_dir() -> Path:
    bundled = getattr(sys, "_MEIPASS", None)
    if bundled:
        return Path(bundled) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def icon_path() -> Path:
    return resources_dir() / "icons" / "infinibook.svg"


def app_icon() -> QIcon:
    path = icon_path()
    if path.exists():
        return QIcon(str(path))
    png = path.with_suffix(".png")
    return QIcon(str(png)) if png.exists() else QIcon()


def sample_book() -> Path | None:
    folder = resources_dir() / "sample"
    for name in ("the-lamplighters-almanac.epub", "the-lamplighters-almanac.md"):
        if (folder / name).exists():
            return folder / name
    return None
