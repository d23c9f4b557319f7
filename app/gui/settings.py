"""Persistent settings (QSettings) and the Settings dialog."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.cli.common import PRECISIONS

from .resources import resources_dir

DEVICES = ["auto", "cpu", "cuda"]
DTYPES = PRECISIONS  # the command line's --dtype choices
RULES = ["", "delta", "linear"]  # "" = the adapter's own rule


@dataclass(frozen=True)
class EngineConfig:
    """What the engine is loaded with. Model, adapter, segment and rule change the memory fingerprint."""

    model: str = ""  # "" = the embedded default model
    device: str = "auto"
    dtype: str = "auto"
    segment: int = 0  # 0 = the adapter's / model's default
    rule: str = ""
    adapter: str = ""  # "" = the model's default adapter, "none" = untrained gates, else an adapter file

    def describe(self) -> str:
        model = os.path.basename(self.model.rstrip("/")) if self.model else "embedded SmolLM2-135M-Instruct"
        parts = [model, self.device]
        if self.dtype != "auto":
            parts.append(self.dtype)
        if self.adapter:
            parts.append(f"adapter {adapter_label(self.adapter)}")
        if self.segment:
            parts.append(f"segment {self.segment}")
        if self.rule:
            parts.append(f"{self.rule} rule")
        return " · ".join(parts)

    def fingerprint_fields(self) -> tuple:
        return (self.model, self.adapter, self.segment, self.rule)


def adapter_label(adapter: str) -> str:
    return "none (untrained gates)" if adapter == "none" else os.path.basename(adapter).removesuffix(".safetensors")


def shipped_adapters() -> list[str]:
    """The adapter files that come with Infinibook, by file name: kept so in the settings, they
    still load once the program has moved (their model cards lie beside them)."""
    return sorted(p.name for p in (resources_dir() / "adapters").glob("*.safetensors"))


def adapter_argument(adapter: str) -> str:
    """What `load_engine(adapter=...)` takes for a setting: a shipped file's name becomes its path."""
    if adapter in ("", "none"):
        return adapter or "default"
    return str(resources_dir() / "adapters" / adapter) if os.path.basename(adapter) == adapter else adapter


class AppSettings:
    """Typed access to QSettings. `path` (or $INFINIBOOK_SETTINGS) selects an INI file, used by
    tests and screenshots; otherwise the platform's native store for Infinibook is used."""

    def __init__(self, path: str | None = None):
        path = path or os.environ.get("INFINIBOOK_SETTINGS")
        if path:
            self.qs = QSettings(str(path), QSettings.Format.IniFormat)
        else:
            self.qs = QSettings("Infinibook", "Infinibook")

    def _get(self, key: str, default, kind=str):
        value = self.qs.value(key, default)
        if value is None:
            return default
        try:
            if kind is int:
                return int(value)
            if kind is bool:
                return value in (True, "true", "1", 1)
            return str(value)
        except (TypeError, ValueError):
            return default

    # engine
    def engine_config(self) -> EngineConfig:
        default = EngineConfig()
        values = {}
        for f in fields(EngineConfig):
            values[f.name] = self._get(f"engine/{f.name}", getattr(default, f.name), type(getattr(default, f.name)))
        return EngineConfig(**values)

    def set_engine_config(self, config: EngineConfig) -> None:
        for key, value in asdict(config).items():
            self.qs.setValue(f"engine/{key}", value)
        self.qs.sync()

    # library
    @property
    def data_dir(self) -> str:
        return self._get("library/data_dir", "")

    @data_dir.setter
    def data_dir(self, value: str) -> None:
        self.qs.setValue("library/data_dir", value or "")

    @property
    def last_book(self) -> str:
        return self._get("library/last_book", "")

    @last_book.setter
    def last_book(self, value) -> None:
        self.qs.setValue("library/last_book", "" if value is None else str(value))

    def remember_book(self, book_id, data_dir: str) -> None:
        """Book ids are per library: the last book is kept with the folder it belongs to."""
        self.last_book = book_id
        self.qs.setValue("library/last_book_dir", data_dir or "")

    def last_book_in(self, data_dir: str) -> str:
        return self.last_book if self._get("library/last_book_dir", "") == (data_dir or "") else ""

    @property
    def sample_offered(self) -> bool:
        return self._get("library/sample_offered", False, bool)

    @sample_offered.setter
    def sample_offered(self, value: bool) -> None:
        self.qs.setValue("library/sample_offered", bool(value))

    # last engine facts, so the memory view shows numbers before the model has loaded
    def cached_engine_info(self) -> dict:
        return {
            "memory_bytes": self._get("engine_info/memory_bytes", 0, int),
            "kv_cache_bytes_per_token": self._get("engine_info/kv_cache_bytes_per_token", 0, int),
            "model_name": self._get("engine_info/model_name", ""),
            "fingerprint": self._get("engine_info/fingerprint", ""),
        }

    def set_cached_engine_info(self, info) -> None:
        for key in ("memory_bytes", "kv_cache_bytes_per_token", "model_name", "fingerprint"):
            value = getattr(info, key, None)
            if value is not None:
                self.qs.setValue(f"engine_info/{key}", value if isinstance(value, int) else str(value))

    # window
    def geometry(self):
        return self.qs.value("window/geometry")

    def set_geometry(self, data) -> None:
        self.qs.setValue("window/geometry", data)

    def splitter_state(self, name: str):
        return self.qs.value(f"window/{name}")

    def set_splitter_state(self, name: str, data) -> None:
        self.qs.setValue(f"window/{name}", data)

    def sync(self) -> None:
        self.qs.sync()


class SettingsDialog(QDialog):
    """Model, device, dtype, adapter, segment length, update rule, data directory."""

    def __init__(self, config: EngineConfig, data_dir: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Infinibook settings")
        self.setMinimumWidth(560)
        form = QFormLayout()

        self.model = QLineEdit(config.model)
        self.model.setPlaceholderText("embedded SmolLM2-135M-Instruct (offline)")
        self.model.setClearButtonEnabled(True)
        form.addRow("Model", self._row(self.model, ("Folder…", self._pick_model_dir), ("GGUF…", self._pick_model_file)))

        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.device.setCurrentText(config.device if config.device in DEVICES else "auto")
        form.addRow("Device", self.device)

        self.dtype = QComboBox()
        self.dtype.addItems(DTYPES)
        self.dtype.setCurrentText(config.dtype if config.dtype in DTYPES else "auto")
        form.addRow("Precision", self.dtype)

        self.segment = QSpinBox()
        self.segment.setRange(0, 16384)
        self.segment.setSingleStep(128)
        self.segment.setSpecialValueText("model default")
        self.segment.setValue(config.segment)
        self.segment.setSuffix(" tokens")
        form.addRow("Segment length", self.segment)

        self.adapter = QComboBox()
        self.adapter.addItem("default (the one shipped for the embedded model)", "")
        self.adapter.addItem(adapter_label("none"), "none")
        for path in shipped_adapters():
            self.adapter.addItem(adapter_label(path), path)
        self._choose_adapter(config.adapter)
        form.addRow("Infini adapter", self._row(self.adapter, ("File…", self._pick_adapter)))

        self.rule = QComboBox()
        for rule in RULES:
            self.rule.addItem(rule or "model default", rule)
        self.rule.setCurrentIndex(max(0, RULES.index(config.rule) if config.rule in RULES else 0))
        form.addRow("Memory update rule", self.rule)

        self.data_dir = QLineEdit(data_dir)
        self.data_dir.setPlaceholderText("default user data directory")
        form.addRow("Library folder", self._row(self.data_dir, ("Browse…", self._pick_data_dir)))

        note = QLabel(
            "A book's memory belongs to the model, adapter, segment length and update rule that read it. "
            "Changing any of them means books must be re-read; Infinibook will offer to do it. The "
            "adapters' model cards (resources/adapters) say what each one's memory can do."
        )
        note.setWordWrap(True)
        note.setStyleSheet("color: palette(mid);")

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)

    @staticmethod
    def _row(field: QWidget, *buttons: tuple[str, Callable[[], None]]) -> QHBoxLayout:
        """A field with the buttons that fill it in (Folder…, File…) on its right."""
        row = QHBoxLayout()
        row.addWidget(field, 1)
        for text, fill in buttons:
            button = QPushButton(text)
            button.clicked.connect(fill)
            row.addWidget(button)
        return row

    def _pick_model_dir(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Hugging Face model folder")
        if path:
            self.model.setText(path)

    def _pick_model_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "GGUF model file", "", "GGUF models (*.gguf)")
        if path:
            self.model.setText(path)

    def _choose_adapter(self, adapter: str) -> None:
        index = self.adapter.findData(adapter)
        if index < 0:  # a file of the person's own
            self.adapter.addItem(adapter_label(adapter), adapter)
            index = self.adapter.count() - 1
        self.adapter.setCurrentIndex(index)

    def _pick_adapter(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Infini adapter", "", "Infini adapters (*.safetensors)")
        if path:
            self._choose_adapter(path)

    def _pick_data_dir(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Library folder")
        if path:
            self.data_dir.setText(path)

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            model=self.model.text().strip(),
            device=self.device.currentText(),
            dtype=self.dtype.currentText(),
            segment=self.segment.value(),
            rule=self.rule.currentData() or "",
            adapter=self.adapter.currentData() or "",
        )

    def chosen_data_dir(self) -> str:
        return self.data_dir.text().strip()
