"""Start the window: `infinibook gui` and `python -m app.gui`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence


def run(*, data_dir: str | None = None, settings_path: str | None = None, engine_factory=None,
        argv: Sequence[str] | None = None, files: Sequence[str] = ()) -> int:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow
    from .resources import app_icon
    from .settings import AppSettings

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication.instance() or QApplication([sys.argv[0], *(argv or [])])
    app.setApplicationName("Infinibook")
    app.setOrganizationName("Infinibook")
    app.setDesktopFileName("io.github.infinibook.Infinibook")
    app.setWindowIcon(app_icon())
    window = MainWindow(AppSettings(settings_path), data_dir=data_dir, engine_factory=engine_factory)
    window.show()
    if files:
        from pathlib import Path

        window.add_paths([str(Path(f).resolve()) for f in files])
    code = app.exec()
    window.runner.wait(-1)  # a model still loading when the window closed cannot be stopped: let it end quietly
    return code


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m app.gui")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--settings", default=None)
    parser.add_argument("files", nargs="*")
    args, rest = parser.parse_known_args()
    return run(data_dir=args.data_dir, settings_path=args.settings, argv=rest, files=args.files)


if __name__ == "__main__":
    sys.exit(main())
