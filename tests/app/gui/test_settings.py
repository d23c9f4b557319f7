"""Settings: QSettings round trip and the dialog."""

from __future__ import annotations

from app.gui.settings import AppSettings, EngineConfig, SettingsDialog


def test_settings_round_trip(tmp_path):
    path = str(tmp_path / "s.ini")
    settings = AppSettings(path)
    assert settings.engine_config() == EngineConfig()
    config = EngineConfig(model="/models/qwen.gguf", device="cpu", dtype="bfloat16", segment=512, rule="linear",
                          adapter="none")
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


def test_the_adapter_is_a_setting_that_reaches_the_engine(qtbot, tmp_path):
    """The shipped adapters are offered by name (a moved installation still finds them); "none"
    and a file of one's own too; the choice changes the fingerprint and is what loads."""
    from app.gui.backend import Backend
    from app.gui.resources import resources_dir
    from app.gui.settings import shipped_adapters

    shipped = shipped_adapters()
    assert "smollm2-135m-instruct-infini-seg1024-passkey.safetensors" in shipped
    dialog = SettingsDialog(EngineConfig(), "")
    qtbot.addWidget(dialog)
    assert dialog.engine_config().adapter == ""
    offered = [dialog.adapter.itemData(i) for i in range(dialog.adapter.count())]
    assert offered == ["", "none", *shipped]
    dialog.adapter.setCurrentIndex(offered.index("smollm2-135m-instruct-infini-seg1024-passkey.safetensors"))
    chosen = dialog.engine_config()
    assert chosen.fingerprint_fields() != EngineConfig().fingerprint_fields()
    assert "seg1024-passkey" in chosen.describe()
    own = SettingsDialog(EngineConfig(adapter=str(tmp_path / "mine.safetensors")), "")
    qtbot.addWidget(own)
    assert own.engine_config().adapter == str(tmp_path / "mine.safetensors")

    calls = []

    def load_engine(model=None, *, adapter="default", device="auto", segment=None, rule=None, dtype="auto"):
        calls.append(adapter)

    backend = Backend(api=type("Api", (), {"load_engine": staticmethod(load_engine)})())
    for config in (EngineConfig(), EngineConfig(adapter="none"), chosen, own.engine_config()):
        backend.load_engine(config)
    assert calls == ["default", "none", str(resources_dir() / "adapters" / chosen.adapter),
                     str(tmp_path / "mine.safetensors")]
