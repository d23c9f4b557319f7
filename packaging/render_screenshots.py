"""Render the README's screenshots of the main window from the real app, driven through a real flow:
add the sample EPUB, watch it being read, ask a question as of chapter 3, summarise chapter 3.

    QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/render_screenshots.py            # embedded model
    QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/render_screenshots.py --tiny     # quick, random model
    xvfb-run -s "-screen 0 1440x900x24" .venv/bin/python packaging/render_screenshots.py  # a real X display

Writes resources/screenshots/{reading,chat,summaries,memory}.png (or --out DIR). Uses a throw-away
library and settings, never the user's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUESTION = "What did Wren find in the drawer of the lamp post?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "resources" / "screenshots"))
    parser.add_argument("--tiny", action="store_true", help="a tiny random model (fast, nonsense answers)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for each step")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="infinibook-shots-"))
    os.environ["INFINIBOOK_DATA_DIR"] = str(work / "data")

    from PySide6.QtWidgets import QApplication

    from app.gui.main_window import MainWindow
    from app.gui.resources import app_icon, resources_dir
    from app.gui.settings import AppSettings

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("Infinibook")
    app.setWindowIcon(app_icon())
    factory = None
    if args.tiny:
        def factory(_config):
            from engine.infini.tiny import tiny_engine

            return tiny_engine(segment=64)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    window = MainWindow(AppSettings(str(work / "settings.ini")), engine_factory=factory)
    window.confirm = lambda *_a: True
    window.resize(1360, 820)
    window.show()

    def wait(predicate, what: str) -> None:
        deadline = time.monotonic() + args.timeout
        while not predicate():
            if window.errors:
                raise SystemExit(f"stopped while waiting for {what}: {window.errors[-1]}")
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {what}")
            app.processEvents()
            time.sleep(0.02)
        for _ in range(20):
            app.processEvents()
            time.sleep(0.01)

    def shot(name: str) -> None:
        path = out / f"{name}.png"
        window.grab().save(str(path))
        print(path, flush=True)

    shot("welcome")
    wait(lambda: window.engine is not None, "the model")
    window.add_paths([str(resources_dir() / "sample" / "the-lamplighters-almanac.epub")])
    wait(lambda: window.ingest_task is not None and window.chapters_done >= 3, "chapter 3 to be read")
    window.reader.show_chapter(2)
    window.tabs.setCurrentWidget(window.chat)
    window.chat.input.setText(QUESTION)
    window.chat.ask_button.click()
    wait(lambda: window.ingest_task is None or window.chapters_done >= 4, "more reading")
    if window.ingest_task is not None:
        shot("reading")
    wait(lambda: not window.chat.streaming and window.ingest_task is None, "the answer and the reading")
    window.chat.input.setText("Who is Oskar?")
    shot("chat")
    window.chat.input.clear()
    window.tabs.setCurrentWidget(window.summaries)
    window.summaries.select(2)
    window.summaries.generate_button.click()
    wait(lambda: window.summaries.generating is None and window.summary_task is None, "the chapter summary")
    shot("summaries")
    window.tabs.setCurrentWidget(window.memory_view)
    shot("memory")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
