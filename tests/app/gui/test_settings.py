"""Settings: QSettings round trip and the dialog."""

from __future__ import annotations

from app.gui.settings import AppSettings, EngineConfig, SettingsDialog


def test_settings_round_trip(tmp_path):
    path = str(tmp_path / "s.ini")
    settings = AppSettings(path)
    assert settings.engine_config() == EngineConfig()
    config = EngineConfig(model="/models/qwen.gguf", device="cpu", dtype="bfloat16", segment=512, rule="linear")
    settings.set_engine_config(config)
    settings.data_dir = str(tmp_path / "lib")
    settings.last_book = 7
    settings.sync()
    again = AppSettings(path)
    assert again.engine_config() == config
    assert again.data_dir == str(tmp_path / "lib")
    assert again.last_book == "7"
    assert config.fingerprint_fields() != EngineConfig(model="/models/qwen.gguf", segment=1024).fingerprint_fields()
    assert "qwen.gguf" in config.describe()


def test_dialog_shows_and_returns_the_choices(qtbot):
    config = EngineConfig(model="/m", device="cuda", dtype="float16", segment=256, rule="delta")
    dialog = SettingsDialog(config, "/data")
    qtbot.addWidget(dialog)
    assert dialog.engine_config() == config
    assert dialog.chosen_data_dir() == "/data"
    dialog.segment.setValue(0)
    dialog.rule.setCurrentIndex(0)
    dialog.model.clear()
    assert dialog.engine_config() == EngineConfig(device="cuda", dtype="float16")
    assert dialog.segment.text() == "model default"
