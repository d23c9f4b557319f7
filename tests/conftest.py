"""Every test runs offline, on a throw-away library, with Qt offscreen."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path, monkeypatch):
    """No test touches the user's real library."""
    monkeypatch.setenv("INFINIBOOK_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"
