import pytest
import torch

from engine.infini.loading import default_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return default_tokenizer()


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Two shared cores: one thread is several times faster than two fighting over them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
