"""Fixtures every engine test area shares."""

import pytest
import torch

from engine.infini.loading import default_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return default_tokenizer()


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Two shared cores: one thread is several times faster than two fighting over them."""
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
