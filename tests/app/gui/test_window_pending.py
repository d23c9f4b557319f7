"""Work that outlives a click: a re-read stopped early, removals waiting for work to stop (also at
closing), and a book added while an answer is written. On the fake facade, in milliseconds."""

from __future__ import annotations

from engine.library import Library

from .conftest import wait_idle


def test_a_reread_stopped_before_its_first_chapter_leaves_the_book_stale(fake_window, qtbot):
    window, fake, (a,) = fake_window(1, loaded=True, fingerprint="fake-fp-2")
    window.open_book(a)
    assert window.stale and window.chapters_done == 3

    def ingest(library, book_id, engine, *, on_event=None, should_cancel=None, restart=False):
        fake._step(should_cancel)  # like the engine: the old memory stays until chapter 1 is saved

    fake.ingest = ingest
    window.start_ingest(restart=True)
    qtbot.waitUntil(lambda: window.ingest_task is not None, timeout=5000)
    window.cancel_ingest()
    wait_idle(qtbot, window, timeout=5000)
    assert window.stale
    assert not window.chat.ask_button.isEnabled()


def test_two_removals_waiting_for_work_both_happen(fake_window, qtbot):
    window, fake, (a, b) = fake_window(loaded=True)
    window.open_book(b)
    window.start_ingest(restart=True)
    qtbot.waitUntil(lambda: window.ingest_task is not None, timeout=5000)
    window.open_book(a)
    window.ask("Q", 0)
    qtbot.waitUntil(lambda: window.ask_task is not None, timeout=5000)
    window.remove_book(b)  # waits for b's reading to stop
    window.remove_book(a)  # waits for a's answer to stop
    wait_idle(qtbot, window, timeout=5000)
    qtbot.waitUntil(lambda: window.library.list_books() == [], timeout=5000)
    assert window.book_id is None


def test_closing_finishes_a_removal_that_waited_for_work(fake_window, qtbot, data_dir):
    window, fake, (a, b) = fake_window(loaded=True)
    window.open_book(a)
    window.ask("Q", 0)
    qtbot.waitUntil(lambda: window.ask_task is not None, timeout=5000)
    window.remove_book(a)
    assert "once the work on it has stopped" in window.statusBar().currentMessage()
    window.close()
    qtbot.waitUntil(lambda: not window.runner.tasks, timeout=5000)
    library = Library.open(data_dir)
    try:
        assert [r.id for r in library.list_books()] == [b]
    finally:
        library.close()
    assert window.settings.last_book in ("", None)


def add_while_answering(fake_window, qtbot, tmp_path, *, read: bool):
    """Book a open and answering, then a new book `New` added."""
    window, fake, (a,) = fake_window(1, loaded=True)
    window.open_book(a)
    window.ask("Q", 0)
    qtbot.waitUntil(lambda: window.ask_task is not None, timeout=5000)
    new = tmp_path / "new.md"
    new.write_text("# New\n\n## One\n\nSome words here.\n", encoding="utf-8")
    window.add_paths([str(new)], read=read)
    return window, fake, a


def test_a_book_added_while_an_answer_is_written_does_not_stop_it(fake_window, qtbot, tmp_path):
    window, fake, a = add_while_answering(fake_window, qtbot, tmp_path, read=False)
    qtbot.waitUntil(lambda: len(window.library.list_books()) == 2, timeout=5000)
    qtbot.waitUntil(lambda: "it is in the library" in window.statusBar().currentMessage(), timeout=5000)
    assert str(window.book_id) == str(a)
    fake.proceed.set()
    wait_idle(qtbot, window, timeout=5000)
    last = window.library.messages(a)[-1]
    assert (last.role, last.content) == ("assistant", f"About book {a}: Q")


def test_a_book_added_while_an_answer_is_written_is_read_beside_it(fake_window, qtbot, tmp_path):
    window, fake, a = add_while_answering(fake_window, qtbot, tmp_path, read=True)
    qtbot.waitUntil(lambda: window.ingest_book_id is not None, timeout=5000)
    added = window.ingest_book_id
    assert str(added) != str(a) and str(window.book_id) == str(a)
    assert "“New”" in window.ingest_bar.label.text()
    fake.proceed.set()
    wait_idle(qtbot, window, timeout=5000)
    assert ("ingest", added) in fake.calls
    assert window.library.ingest_progress(added).chapters_done == len(window.library.chapters(added))


def test_asking_while_the_last_books_answer_stops_says_so(fake_window, qtbot):
    window, fake, (a, b) = fake_window(loaded=True)
    window.open_book(a)
    window.ask("Q", 0)
    qtbot.waitUntil(lambda: window.ask_task is not None, timeout=5000)
    window.open_book(b)  # cancels a's answer, which has not ended yet
    assert window.ask_task is not None
    window.chat.input.setText("Q-B")
    window.ask("Q-B", 0)
    assert "still stopping" in window.statusBar().currentMessage()
    assert window.chat.input.text() == "Q-B"  # kept, to ask again
    wait_idle(qtbot, window, timeout=5000)


def test_reread_from_the_start_while_the_book_is_read_says_so(fake_window, qtbot):
    window, fake, (a,) = fake_window(1, read=False, loaded=True)
    window.open_book(a)
    window.start_ingest()
    qtbot.waitUntil(lambda: window.ingest_task is not None, timeout=5000)
    window.start_ingest(restart=True)
    assert "cancel that first to read it from the start" in window.statusBar().currentMessage()
    fake.proceed.set()
    wait_idle(qtbot, window, timeout=5000)
    assert fake.calls.count(("ingest", a)) == 1


def test_an_answer_of_blank_lines_says_the_model_gave_none(fake_window, qtbot):
    """The engine keeps neither such an answer nor its question; the window says so under it."""
    window, fake, (a,) = fake_window(1, loaded=True)
    window.open_book(a)
    fake.ask = lambda library, book_id, engine, question, **options: iter(["\n", "\n\n"])
    fake.proceed.set()
    window.ask("Q", 0)
    wait_idle(qtbot, window, timeout=5000)
    assert window.chat.bubbles[-1].markdown.strip() == f"*{fake.NO_ANSWER}*"
    assert window.library.messages(a) == []
