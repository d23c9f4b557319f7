"""Two Infinibooks (the window and the command line, say) opening a new library together."""

import threading
from pathlib import Path

from engine.library import Library


def test_two_openers_of_a_new_library_both_succeed(tmp_path: Path) -> None:
    failures: list[str] = []

    def opener(folder: Path, barrier: threading.Barrier) -> None:
        barrier.wait()
        try:
            Library.open(folder).close()
        except Exception as e:  # noqa: BLE001 - the test reports whatever went wrong
            failures.append(str(e))

    for attempt in range(20):
        folder = tmp_path / str(attempt)
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=opener, args=(folder, barrier)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
    with Library.open(tmp_path / "0") as library:
        assert library.list_books() == []
