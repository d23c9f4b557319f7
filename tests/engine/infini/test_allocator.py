import sys

import pytest

from engine.infini.allocator import keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_glibc_accepts_the_reuse_thresholds():
    assert keep_freed_memory() is True
