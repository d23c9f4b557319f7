"""Every test runs offline, on a throw-away library, cache and settings file, with Qt offscreen."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def isolated_cache_dir(tmp_path_factory):
    """Converted models and the weights' hash index never go to the user's real cache. One cache
    for the whole session (a conversion is slow); a test may still set its own with monkeypatch."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INFINIBOOK_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path, monkeypatch):
    """No test touches the user's real library or window settings (a window made without a
    settings path would otherwise write to the platform's store)."""
    monkeypatch.setenv("INFINIBOOK_SETTINGS", str(tmp_path / "settings.ini"))
    monkeypatch.setenv("INFINIBOOK_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"
