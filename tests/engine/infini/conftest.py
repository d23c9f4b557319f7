import pytest


@pytest.fixture(scope="session")
def real_engine():
    """The embedded default model, untrained gates (bounded tests only: ~3 s to load)."""
    from engine.infini import load_engine

    return load_engine(adapter=None, device="cpu", segment=128)
