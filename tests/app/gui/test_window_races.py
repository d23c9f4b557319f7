"""Work requested while the model loads or while other work runs: it stays with its book, can be
stopped, never runs twice, and never leaves a panel locked. A fake facade makes each step wait
for the test, so these run in milliseconds and always in the same order."""

from __future__ import annotations

import time

from app.gui.summaries import BOOK
from engine.reading.events import IngestEvent

from .conftest import wait_idle


def run_everything(qtbot, window, fake) -> None:
    """Load the model, let all work proceed, and wait until it has ended."""
    fake.model_may_load.set()
    fake.proceed.set()
    qtbot.waitUntil(lambda: window.engine is not None, timeout=5000)
    wait_idle(qtbot, window, timeout=5000)


def test_a_question_asked_while_the_model_loads_stays_with_its_book(fake_window, qtbot):
    window, fake, (a, b) = fake_window()
    window.open_book(a)
    window.ask("Q-A", 0)
    assert window.chat.streaming
    window.open_book(b)
    assert not window.chat.streaming
    window.ask("Q-B", 0)
    run_everything(qtbot, window, fake)
    assert fake.calls == [("ask", b, "Q-B")]
    assert [text for _, text in window.chat.transcript()] == ["Q-B", f"About book {b}: Q-B"]


def test_stop_while_the_model_loads_drops_the_question(fake_window, qtbot):
    window, fake, (a, _) = fake_window()
    window.open_book(a)
    window.ask("Q", 0)
    window.chat.stop_button.click()
    assert not window.chat.streaming
    assert window.chat.transcript()[-1] == ("assistant", "*Stopped.*")
    run_everything(qtbot, window, fake)
    assert fake.calls == []


def test_a_summary_queued_behind_the_model_never_locks_the_panel(fake_window, qtbot):
    window, fake, (a, b) = fake_window()
    window.open_book(a)
    window.summaries.select(0)
    window.summaries.generate_button.click()
    assert window.summaries.generating == 0
    window.open_book(b)
    assert window.summaries.generating is None
    window.summaries.select(0)
    assert window.summaries.generate_button.isEnabled() and window.summaries.stop_button.isHidden()

    window.summaries.generate_button.click()
    window.summaries.stop_button.click()  # Stop works before the model is there, too
    assert window.summaries.generating is None
    run_everything(qtbot, window, fake)
    assert fake.calls == []
    assert window.summaries.generate_button.isEnabled()


def test_read_pressed_twice_while_the_model_loads_reads_once(fake_window, qtbot):
    window, fake, (a,) = fake_window(1, read=False)
    window.open_book(a)
    window.start_ingest()
    window.start_ingest()
    run_everything(qtbot, window, fake)
    assert fake.calls == [("ingest", a)]
    assert window.chapters_done == len(window.chapter_records)


def test_cancel_drops_a_reading_queued_behind_the_model(fake_window, qtbot):
    window, fake, (a,) = fake_window(1, read=False)
    window.open_book(a)
    window.start_ingest()
    window.cancel_ingest()
    assert window.ingest_book_id is None
    assert window.ingest_bar.read_button.isVisible()
    run_everything(qtbot, window, fake)
    assert fake.calls == []


def test_cancel_keeps_saying_stopping_while_progress_still_arrives(fake_window, qtbot):
    window, fake, (a,) = fake_window(1, read=False, loaded=True)
    window.open_book(a)
    window.start_ingest()
    window.cancel_ingest()
    window._ingest_event(IngestEvent(0, 3, "One", 5, 30, 1.0, 1.0, False))  # queued before Cancel took effect
    assert window.ingest_bar.label.text().startswith("Stopping")
    assert not window.ingest_bar.cancel_button.isEnabled()
    assert window.ingest_bar.bar.value() > 0
    wait_idle(qtbot, window, timeout=5000)


def test_removing_the_open_book_while_it_answers_waits_for_the_answer(fake_window, qtbot):
    window, fake, (a, b) = fake_window(loaded=True)
    window.open_book(a)
    window.ask("Q", 0)
    qtbot.waitUntil(lambda: bool(fake.calls), timeout=5000)  # the answer is being written
    window.remove_book(a)
    wait_idle(qtbot, window, timeout=5000)
    assert window.errors == []
    assert [record.id for record in window.library.list_books()] == [b]
    assert str(window.book_id) == str(b)


def test_stopping_a_book_summary_keeps_the_chapter_summaries_it_made(fake_window, qtbot):
    window, fake, (a, _) = fake_window(loaded=True)
    window.open_book(a)
    chapters = list(range(len(window.chapter_records)))
    window.generate_summary(BOOK)
    qtbot.waitUntil(lambda: len(window.library.summaries(a)) == len(chapters), timeout=5000)
    window.stop_summary()
    wait_idle(qtbot, window, timeout=5000)
    assert sorted(window.summaries.texts) == chapters
    assert window.errors == []


def test_closing_while_the_model_loads_does_not_wait_for_it(fake_window, qtbot):
    window, fake, _ = fake_window()
    qtbot.waitUntil(lambda: window._engine_task is not None, timeout=5000)
    started = time.monotonic()
    window.close()
    assert time.monotonic() - started < 1.0
    assert window.isHidden()
