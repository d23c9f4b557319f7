"""Changing the library folder, outdated summaries, messages worded for the window, error boxes.
On the fake facade (fake_api.py), so each runs in milliseconds and always in the same order."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMessageBox

from app.gui.messages import for_window
from app.gui.settings import AppSettings
from app.gui.summaries import BOOK
from engine.errors import LibraryError
from engine.library import Library

from .conftest import wait_idle
from .fake_api import FINGERPRINT, make_books

OTHER_FINGERPRINT = "fake-fp-2"


def test_changing_the_library_folder_closes_the_old_library(fake_window, tmp_path):
    window, _fake, (a, _) = fake_window()
    window.open_book(a)
    old = window.library
    window.apply_settings(window.engine_config, str(tmp_path / "other"))
    assert window.library is not old and window.library.list_books() == []
    with pytest.raises(LibraryError, match="closed"):
        old.list_books()


def test_the_last_book_reopened_is_the_one_of_the_library_shown(fake_window, tmp_path):
    window, _fake, (_a, b) = fake_window()
    window.open_book(b)
    other = tmp_path / "other"
    other.mkdir()
    same_ids = make_books(str(other), 2)  # ids 1 and 2 again, other books
    assert str(b) in map(str, same_ids)
    window.apply_settings(window.engine_config, str(other))
    assert window.book_id is None  # not the other library's book that happens to share the id
    window.apply_settings(window.engine_config, str(tmp_path / "library"))
    assert str(window.book_id) == str(b) and window.book_title == "Book 1"


def test_a_library_folder_that_cannot_be_opened_keeps_the_open_one(fake_window, qtbot, tmp_path, settings_path):
    window, _fake, (a, b) = fake_window()
    window.open_book(a)
    before = window.current_data_dir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "library.sqlite3").write_bytes(b"this is not a database " * 100)

    window.apply_settings(window.engine_config, str(broken))
    assert len(window.errors) == 1
    assert "--data-dir" not in window.errors[0] and "Settings" in window.errors[0]
    assert window.current_data_dir() == before and AppSettings(settings_path).data_dir != str(broken)
    assert str(window.book_id) == str(a) and window.center.currentWidget() is window.reader
    window.open_book(b)  # the library still works
    assert str(window.book_id) == str(b)


def test_summaries_made_with_another_model_are_shown_as_outdated(fake_window, qtbot, data_dir):
    window, fake, (a,) = fake_window(1, fingerprint=OTHER_FINGERPRINT)
    library = Library.open(data_dir)
    library.save_summary(a, 0, "Old summary.", FINGERPRINT)
    library.save_summary(a, 1, "New summary.", OTHER_FINGERPRINT)
    library.close()
    window.open_book(a)
    fake.model_may_load.set()
    qtbot.waitUntil(lambda: window.engine is not None, timeout=5000)

    marks = [window.summaries.list.item(row).text()[:1] for row in (1, 2, 3)]
    assert marks == ["↻", "✓", " "]
    window.summaries.select(0)
    shown = window.summaries.view.toPlainText()
    assert "Old summary." in shown and "Regenerate" in shown  # kept readable, marked outdated
    window.summaries.select(1)
    assert window.summaries.view.toPlainText().strip() == "New summary."


def test_a_book_summary_older_than_a_regenerated_chapter_summary_is_shown_as_outdated(fake_window, qtbot, data_dir):
    window, fake, (a,) = fake_window(1)
    library = Library.open(data_dir)
    library.save_summary(a, 0, "Chapter one.", FINGERPRINT)
    library.save_summary(a, None, "The whole book.", FINGERPRINT)
    library.save_summary(a, 0, "Chapter one, regenerated.", FINGERPRINT)
    library.close()
    window.open_book(a)
    fake.model_may_load.set()
    qtbot.waitUntil(lambda: window.engine is not None, timeout=5000)

    assert [window.summaries.list.item(row).text()[:1] for row in (0, 1)] == ["↻", "✓"]
    window.summaries.select(BOOK)
    shown = window.summaries.view.toPlainText()
    assert "The whole book." in shown and "before one of the chapter summaries" in shown


def test_ctrl_r_on_a_stale_book_words_the_advice_for_the_window(fake_window, qtbot):
    window, _fake, (a,) = fake_window(1, loaded=True, fingerprint=OTHER_FINGERPRINT)
    window.open_book(a)
    assert window.stale
    read = next(act for act in window.findChildren(QAction) if act.shortcut() == QKeySequence("Ctrl+R"))
    read.trigger()
    qtbot.waitUntil(lambda: bool(window.errors), timeout=5000)
    wait_idle(qtbot, window, timeout=5000)
    assert "--restart" not in window.errors[0] and "Re-read from the start" in window.errors[0]


def test_library_messages_name_the_window_not_the_command_line(tmp_path):
    library = Library.open(str(tmp_path / "lib"))
    messages = []
    for call in (lambda: library.get_book(999), lambda: library.resolve("nothing"),
                 lambda: library.resolve(str(tmp_path / "lib" / "library.sqlite3"))):
        with pytest.raises(LibraryError) as error:
            call()
        messages.append(for_window(str(error.value)))
    library.close()
    for message in messages:
        assert "infinibook " not in message and "--" not in message, message


def test_error_boxes_are_deleted_once_closed(fake_window, qtbot):
    window, _fake, _ids = fake_window()
    for text in ("One.", "Two."):
        window.show_error(text)
    boxes = list(window._boxes)
    assert len(boxes) == 2
    for box in boxes:
        box.done(QMessageBox.StandardButton.Ok)
    assert window._boxes == []
    qtbot.waitUntil(lambda: not window.findChildren(QMessageBox), timeout=2000)


def test_a_model_that_fails_to_load_is_not_stored_in_the_settings(make_window, qtbot, settings_path):
    from app.gui.settings import EngineConfig
    from engine.errors import ModelError

    from .fake_api import FakeApi

    fake = FakeApi(FINGERPRINT)
    fake.model_may_load.set()

    def factory(config):
        if config.model == "broken":
            raise ModelError("The model “broken” could not be loaded.")
        return fake.load(config)

    window = make_window(api=fake, engine_factory=factory)
    qtbot.waitUntil(lambda: window.engine is not None, timeout=5000)
    window.apply_settings(EngineConfig(model="broken"), window.current_data_dir())
    qtbot.waitUntil(lambda: bool(window.errors), timeout=5000)
    assert "broken" in window.errors[-1]
    assert AppSettings(settings_path).engine_config() == EngineConfig()  # the next start loads the working one

    window.apply_settings(EngineConfig(segment=64), window.current_data_dir())
    qtbot.waitUntil(lambda: window.engine is not None, timeout=5000)
    assert AppSettings(settings_path).engine_config() == EngineConfig(segment=64)
