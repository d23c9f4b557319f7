"""Fixtures every engine test area shares."""

import os

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


@pytest.fixture
def flushed(monkeypatch) -> list[int]:
    """The inode of every file or folder os.fsync flushes, in order (a renamed file keeps its inode)."""
    inodes: list[int] = []
    fsync = os.fsync

    def record(descriptor: int) -> None:
        inodes.append(os.fstat(descriptor).st_ino)
        fsync(descriptor)

    monkeypatch.setattr(os, "fsync", record)
    return inodes
