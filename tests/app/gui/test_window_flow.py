"""Open a book → read it (tiny model) → ask → summaries → close → reopen: everything is still there."""

from __future__ import annotations

from pathlib import Path

from app.gui.summaries import BOOK

from .conftest import ENGINE_LOAD_MS, SAMPLE, wait_idle


def test_open_read_ask_summarise_close_reopen(make_window, qtbot, tmp_path):
    window = make_window()
    qtbot.waitUntil(lambda: window.engine is not None, timeout=ENGINE_LOAD_MS)
    assert window.center.currentWidget() is window.welcome

    window.add_paths([str(SAMPLE)])
    qtbot.waitUntil(lambda: window.book_id is not None, timeout=20000)
    qtbot.waitUntil(lambda: window.ingest_task is not None or window.chapters_done == 6, timeout=20000)
    wait_idle(qtbot, window)
    assert window.chapters_done == 6
    assert window.library_panel.widgets[str(window.book_id)].row.chapters_done == 6
    assert "All 6 chapters" in window.ingest_bar.label.text()
    assert window.memory_view.plot.tokens_done > 0
    assert window.memory_view.chapters.count() == 6

    # the as-of selector follows the reader
    window.reader.show_chapter(2)
    assert window.chat.as_of_chapter() == 2
    window.reader.toc.setCurrentRow(4)
    assert window.reader.current == 4 and window.chat.as_of_chapter() == 4
    window.reader.show_chapter(2)

    window.chat.input.setText("Who is Wren Halloway?")
    window.chat.ask_button.click()
    assert window.chat.streaming
    wait_idle(qtbot, window)
    transcript = window.chat.transcript()
    assert [role for role, _ in transcript] == ["user", "assistant"]
    assert transcript[0][1] == "Who is Wren Halloway?"
    stored = window.library.messages(window.book_id)
    assert [(m.role, m.as_of_chapter) for m in stored] == [("user", 2), ("assistant", 2)]
    assert window.chat.bubbles[1].markdown.strip() == stored[1].content.strip()
    assert "as of chapter 3" in window.chat.bubbles[0].header.text()

    window.summaries.select(1)  # chapter 2 (keys are 0-based chapter indexes)
    window.summaries.generate_button.click()
    wait_idle(qtbot, window)
    statuses = []
    show_status = window.summaries.show_status
    window.summaries.show_status = lambda text: statuses.append(text) or show_status(text)
    window.generate_summary(BOOK)
    wait_idle(qtbot, window, timeout=240_000)  # five chapter summaries, then the book's: minutes on a busy CPU
    assert statuses and statuses[0].startswith("Summarising chapter 1 of 6")  # the missing ones first
    assert set(window.summaries.texts) >= {1, BOOK}
    assert window.summaries.generate_button.text() == "Regenerate"
    exported = Path(window.export_summaries(str(tmp_path / "summaries.md")))
    assert "Lamplighter" in exported.read_text(encoding="utf-8")
    window.summaries.select(1)
    window.summaries.copy_current()
    from PySide6.QtGui import QGuiApplication

    assert QGuiApplication.clipboard().text() == window.summaries.texts[1]
    assert window.errors == []
    book_id = window.book_id
    summaries = dict(window.summaries.texts)
    window.close()

    # reopen: same book, same chapter, chat and summaries at once, nothing re-read
    again = make_window(load_engine_on_start=False)
    assert str(again.book_id) == str(book_id)
    assert again.reader.current == 2
    assert again.chat.as_of_chapter() == 2
    assert [role for role, _ in again.chat.transcript()] == ["user", "assistant"]
    assert again.summaries.texts == summaries
    assert again.chapters_done == 6
    assert again.engine is None and not again.runner.running("ingest")
    assert again.memory_view.plot.memory_bytes > 0  # remembered from the last session
    assert again.ingest_bar.read_button.isHidden()
