"""Render resources/icons/infinibook.svg to PNGs (for PyInstaller, AppStream and Windows/macOS icons).

    QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/render_icon.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"


def main() -> None:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841
    renderer = QSvgRenderer(str(ICONS / "infinibook.svg"))
    for size in (256, 128, 64, 48):
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        name = "infinibook.png" if size == 256 else f"infinibook-{size}.png"
        image.save(str(ICONS / name))
        print(ICONS / name)


if __name__ == "__main__":
    main()
