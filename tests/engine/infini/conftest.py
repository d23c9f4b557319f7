import pytest


@pytest.fixture(scope="session")
def real_engine():
    """The embedded default model, untrained gates (bounded tests only: ~3 s to load)."""
    from engine.infini import load_engine

    return load_engine(adapter=None, device="cpu", segment=128)


@pytest.fixture(scope="session")
def shipped_engine():
    """The embedded default model with the shipped adapter, at a short segment for bounded tests."""
    from engine.infini import load_engine

    return load_engine(device="cpu", segment=128)
