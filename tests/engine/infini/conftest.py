import pytest

from engine.infini.loading import default_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return default_tokenizer()


@pytest.fixture(scope="session")
def real_engine():
    """The embedded default model, untrained gates (bounded tests only: ~3 s to load)."""
    from engine.infini import load_engine

    return load_engine(adapter=None, device="cpu", segment=128)
