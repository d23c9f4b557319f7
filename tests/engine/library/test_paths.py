"""The data and cache folders: overrides, environment variables, the home folder."""

from engine.paths import cache_dir, data_dir


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
