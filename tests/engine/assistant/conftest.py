import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on shared cores: one thread is ~100x faster than contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def library(isolated_data_dir):
    from engine.api import open_library

    lib = open_library(isolated_data_dir)
    yield lib
    lib.close()
