"""Long work never freezes the window: the GUI event loop keeps ticking during ingest and
generation, and questions about chapters already read are answered while reading goes on."""

from __future__ import annotations

import gzip
from pathlib import Path

from app.gui.summaries import BOOK

from .conftest import ENGINE_LOAD_MS, StallMeter, wait_idle

ROOT = Path(__file__).resolve().parents[3]
STALL_LIMIT_S = 0.100


def long_book(tmp_path: Path, chapters: int = 8, words: int = 900) -> str:
    """A Markdown book cut from the public-domain KJV text in resources/texts."""
    text = gzip.open(ROOT / "resources" / "texts" / "kjv.txt.gz", "rt", encoding="utf-8").read(400_000).split()
    parts = ["# A Long Test Book", ""]
    for i in range(chapters):
        parts += [f"## Part {i + 1}", "", " ".join(text[i * words:(i + 1) * words]), ""]
    path = tmp_path / "long-book.md"
    path.write_text("\n".join(parts), encoding="utf-8")
    return str(path)


def measure_stalls(window, qtbot, tmp_path, name: str) -> tuple[float, float]:
    meter = StallMeter()
    meter.start()
    window.add_paths([long_book(tmp_path / name)])
    qtbot.waitUntil(lambda: window.ingest_task is not None, timeout=20000)
    wait_idle(qtbot, window, timeout=120000)
    ingest_worst = meter.stop()
    assert window.chapters_done == 8, window.errors

    meter.start()
    window.ask("What happens in the first part?", 3)
    wait_idle(qtbot, window)
    window.generate_summary(0)
    wait_idle(qtbot, window)
    generation_worst = meter.stop()
    print(f"\nworst event-loop stall: ingest {ingest_worst * 1000:.1f} ms, "
          f"generation {generation_worst * 1000:.1f} ms ({meter.ticks} ticks)")
    return ingest_worst, generation_worst


def test_event_loop_never_stalls_during_ingest_and_generation(make_window, qtbot, tmp_path, record_property):
    """A 10 ms GUI timer keeps ticking, never more than 100 ms apart, through a whole ingest and
    through an answer and a summary. The machine may be shared with other heavy processes: a run
    over the limit is measured once more (with another book) before the test fails."""
    window = make_window()
    qtbot.waitUntil(lambda: window.engine is not None, timeout=ENGINE_LOAD_MS)
    runs = []
    for attempt in ("first", "second"):
        (tmp_path / attempt).mkdir()
        if attempt == "second":
            window.remove_book(window.book_id)
        runs.append(measure_stalls(window, qtbot, tmp_path, attempt))
        if max(runs[-1]) < STALL_LIMIT_S:
            break
    ingest_worst, generation_worst = runs[-1]
    record_property("ingest_worst_stall_ms", round(ingest_worst * 1000, 1))
    record_property("generation_worst_stall_ms", round(generation_worst * 1000, 1))
    assert window.errors == []
    assert ingest_worst < STALL_LIMIT_S, runs
    assert generation_worst < STALL_LIMIT_S, runs


def test_chat_about_read_chapters_while_later_ones_are_read(make_window, qtbot, tmp_path):
    window = make_window()
    qtbot.waitUntil(lambda: window.engine is not None, timeout=ENGINE_LOAD_MS)
    window.add_paths([long_book(tmp_path, chapters=12, words=1200)])
    qtbot.waitUntil(lambda: window.ingest_task is not None and window.chapters_done >= 1, timeout=60000)
    window.ask("Who speaks first?", 0)
    answered_during_ingest = []
    qtbot.waitUntil(lambda: not window.chat.streaming, timeout=60000)
    answered_during_ingest.append(window.ingest_task is not None)
    assert window.chat.transcript()[1][1].strip() or window.library.messages(window.book_id)
    assert answered_during_ingest == [True], "the answer should arrive while later chapters are still being read"
    # as-of choices beyond what is read are marked, and the answer used chapter 1
    assert window.library.messages(window.book_id)[0].as_of_chapter == 0
    window.cancel_ingest()
    wait_idle(qtbot, window)
    assert 1 <= window.chapters_done < 12
    assert "Resume reading" == window.ingest_bar.read_button.text()
    assert not window.ingest_bar.read_button.isHidden()
    assert window.errors == []


def test_summary_of_unread_chapter_is_refused_with_a_sentence(make_window, qtbot, tmp_path):
    window = make_window()
    qtbot.waitUntil(lambda: window.engine is not None, timeout=ENGINE_LOAD_MS)
    window.add_paths([long_book(tmp_path, chapters=12, words=1200)])
    qtbot.waitUntil(lambda: window.ingest_task is not None, timeout=60000)
    window.cancel_ingest()
    wait_idle(qtbot, window)
    done = window.chapters_done
    assert done < 12
    window.generate_summary(11)
    assert window.errors and window.errors[-1].endswith(".")
    assert window.summaries.generating is None
    window.summaries.select(BOOK)
    assert not window.summaries.generate_button.isEnabled()
    window.generate_summary(BOOK)
    assert "whole book" in window.errors[-1] and window.summaries.generating is None
