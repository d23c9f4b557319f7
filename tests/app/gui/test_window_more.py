"""Settings that change the memory fingerprint, bad files, drag and drop, reading position."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from app.gui.settings import AppSettings, EngineConfig

from .conftest import ENGINE_LOAD_MS, SAMPLE, wait_idle


def read_sample(window, qtbot):
    qtbot.waitUntil(lambda: window.engine is not None, timeout=ENGINE_LOAD_MS)
    window.add_paths([str(SAMPLE)])
    qtbot.waitUntil(lambda: window.book_id is not None, timeout=20000)
    qtbot.waitUntil(lambda: window.ingest_task is not None or window.chapters_done == 6, timeout=20000)
    wait_idle(qtbot, window)
    assert window.chapters_done == 6, window.errors


def test_changing_the_segment_length_offers_to_reread(make_window, qtbot, settings_path):
    engines = {}

    def factory(config):
        from engine.infini.tiny import tiny_engine

        segment = config.segment or 32
        if segment not in engines:
            engines[segment] = tiny_engine(segment=segment)
        return engines[segment]

    window = make_window(engine_factory=factory)
    read_sample(window, qtbot)
    old = window.engine_info["fingerprint"]
    asked = []
    window.confirm = lambda title, text: asked.append(text) or True

    window.apply_settings(EngineConfig(segment=64), window.current_data_dir())
    qtbot.waitUntil(lambda: bool(asked), timeout=60000)
    assert "re-read" in asked[0]
    assert window.engine_info["fingerprint"] != old
    qtbot.waitUntil(lambda: window.ingest_task is not None or window.chapters_done == 6, timeout=20000)
    wait_idle(qtbot, window)
    assert window.chapters_done == 6 and not window.stale
    assert AppSettings(settings_path).engine_config().segment == 64

    # declining leaves the book marked stale, with a button to re-read it
    window.confirm = lambda *_a: False
    window.apply_settings(EngineConfig(segment=32), window.current_data_dir())
    qtbot.waitUntil(lambda: window.engine_info["fingerprint"] == old and window._after_engine_reload is None,
                    timeout=30000)
    assert window.stale
    assert window.ingest_bar.read_button.text() == "Re-read the book"
    assert not window.chat.ask_button.isEnabled()
    assert window.errors == []


def test_a_broken_book_gets_one_sentence_and_the_library_is_unchanged(make_window, qtbot, tmp_path):
    window = make_window()
    bad = tmp_path / "broken.epub"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip file")
    window.add_paths([str(bad)])
    qtbot.waitUntil(lambda: bool(window.errors), timeout=20000)
    message = window.errors[0]
    assert message.strip() and "\n" not in message.strip() and "Traceback" not in message
    assert any(box.text() == message for box in window._boxes)
    assert window.library.list_books() == []
    assert window.center.currentWidget() is window.welcome


def test_dropping_a_file_adds_and_reads_it(make_window, qtbot):
    window = make_window()
    qtbot.waitUntil(lambda: window.engine is not None, timeout=ENGINE_LOAD_MS)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(SAMPLE))])
    event = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    qtbot.waitUntil(lambda: window.book_id is not None, timeout=20000)
    qtbot.waitUntil(lambda: window.ingest_task is not None or window.chapters_done == 6, timeout=20000)
    wait_idle(qtbot, window)
    assert window.chapters_done == 6
    assert window.library_panel.list.count() == 1


def test_reading_position_is_saved_per_book(make_window, qtbot):
    window = make_window()
    read_sample(window, qtbot)
    window.resize(900, 400)
    window.reader.show_chapter(4)
    qtbot.wait(50)
    bar = window.reader.text.verticalScrollBar()
    bar.setValue(bar.maximum() // 2 or 1)
    offset = window.reader.offset()
    window.reader.flush_position()
    qtbot.waitUntil(lambda: tuple(window.library.get_position(window.book_id)) == (4, offset), timeout=5000)
    window.close()

    again = make_window(load_engine_on_start=False)
    again.resize(900, 400)
    qtbot.wait(100)
    assert again.reader.current == 4
    assert again.chat.as_of_chapter() == 4
    assert abs(again.reader.offset() - offset) < 80


def test_remove_book_asks_first(make_window, qtbot):
    window = make_window()
    read_sample(window, qtbot)
    window.confirm = lambda *_a: False
    window.remove_book(window.book_id)
    assert len(window.library.list_books()) == 1
    window.confirm = lambda *_a: True
    window.remove_book(window.book_id)
    assert window.library.list_books() == []
    assert window.center.currentWidget() is window.welcome


def test_a_missing_model_is_reported_in_one_sentence(make_window, qtbot, tmp_path, settings_path):
    AppSettings(settings_path).set_engine_config(EngineConfig(model=str(tmp_path / "no-such-model")))
    window = make_window(engine_factory=None)  # the real facade's load_engine
    qtbot.waitUntil(lambda: bool(window.errors), timeout=60000)
    message = window.errors[0]
    assert "no-such-model" in message and "\n" not in message.strip() and "Traceback" not in message
    assert window.engine is None
    assert "not loaded" in window.engine_label.text()


def test_changing_the_library_folder_opens_that_library(make_window, qtbot, tmp_path, settings_path):
    window = make_window()
    read_sample(window, qtbot)
    first = window.current_data_dir()
    other = tmp_path / "other-library"
    window.apply_settings(window.engine_config, str(other))
    assert window.library.list_books() == []
    assert window.center.currentWidget() is window.welcome
    assert AppSettings(settings_path).data_dir == str(other)
    window.apply_settings(window.engine_config, first)
    assert len(window.library.list_books()) == 1
    assert window.errors == []


def test_a_question_too_long_for_the_segment_gets_one_sentence_and_goes_back_to_the_input(make_window, qtbot):
    window = make_window()
    read_sample(window, qtbot)
    question = " ".join(["Why did the lamplighter climb the tower at night?"] * 10)
    window.chat.input.setText(question)
    window.chat.ask_button.click()
    qtbot.waitUntil(lambda: bool(window.errors), timeout=20000)
    wait_idle(qtbot, window)
    message = window.errors[0]
    assert "too long" in message and "at most" in message and "\n" not in message
    assert any(box.text() == message for box in window._boxes)
    assert window.library.messages(window.book_id) == []  # nothing stored, nothing shown
    assert window.chat.transcript() == [] and window.chat.empty_hint.isVisibleTo(window.chat)
    assert window.chat.input.text() == question and window.chat.ask_button.isEnabled()
