"""The data and cache folders: overrides, environment variables, the home folder."""

import os
import stat
from pathlib import Path

import pytest

from engine.paths import cache_dir, data_dir, replace_durably, write_text_atomically


def test_a_tilde_in_a_chosen_folder_means_the_home_folder(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    monkeypatch.chdir(tmp_path)
    assert data_dir("~/books") == home / "books"
    monkeypatch.setenv("INFINIBOOK_DATA_DIR", "~/library")
    assert data_dir() == home / "library"
    monkeypatch.setenv("INFINIBOOK_CACHE_DIR", "~/cache")
    assert cache_dir() == home / "cache"
    assert not (tmp_path / "~").exists()


def test_tests_never_use_the_real_data_cache_or_settings(tmp_path_factory):
    """tests/conftest.py points every folder the app reads from the environment at throw-away ones."""
    scratch = tmp_path_factory.getbasetemp()
    for variable in ("INFINIBOOK_DATA_DIR", "INFINIBOOK_CACHE_DIR", "INFINIBOOK_SETTINGS"):
        assert variable in os.environ, variable
        assert Path(os.environ[variable]).is_relative_to(scratch), variable
    assert cache_dir().is_relative_to(scratch) and data_dir().is_relative_to(scratch)


def test_a_written_file_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "notes.md"
    target.write_text("old notes", encoding="utf-8")
    target.chmod(0o640)
    write_text_atomically(target, "new notes")
    assert target.read_text(encoding="utf-8") == "new notes"
    with pytest.raises(UnicodeEncodeError):  # fails part-way
        write_text_atomically(target, "newer \ud800")
    assert target.read_text(encoding="utf-8") == "new notes"
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left behind
    if os.name == "posix":  # the person's permissions stay; a new file gets the usual ones
        assert stat.S_IMODE(target.stat().st_mode) == 0o640
        (tmp_path / "plain.md").write_text("")
        write_text_atomically(tmp_path / "fresh.md", "")
        assert target.with_name("fresh.md").stat().st_mode == (tmp_path / "plain.md").stat().st_mode
        write_text_atomically("/dev/null", "not a file to replace")  # written through, left a device
        assert not Path("/dev/null").is_file()


def test_a_folder_is_flushed_to_disk_before_it_takes_its_name(tmp_path, monkeypatch, flushed):
    partial = tmp_path / "weights.partial"
    (partial / "inner").mkdir(parents=True)
    (partial / "model.safetensors").write_bytes(b"weights")
    (partial / "inner" / "config.json").write_text("{}")
    renamed = []
    replace = os.replace
    monkeypatch.setattr(os, "replace", lambda *paths: renamed.append(len(flushed)) or replace(*paths))
    replace_durably(partial, tmp_path / "weights")
    files = [tmp_path / "weights" / "model.safetensors", tmp_path / "weights" / "inner" / "config.json"]
    before_rename = set(flushed[:renamed[0]])
    assert {file.stat().st_ino for file in files} <= before_rename
    if hasattr(os, "O_DIRECTORY"):  # folders can be flushed: the new one before, its parent after the rename
        assert (tmp_path / "weights").stat().st_ino in before_rename
        assert flushed[renamed[0]:] == [tmp_path.stat().st_ino]
