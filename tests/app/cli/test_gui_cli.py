"""`infinibook gui` is registered and hands its options to the window."""

from __future__ import annotations

from app.cli import build_parser


def test_gui_subcommand_parses_files_and_options(monkeypatch):
    args = build_parser().parse_args(["gui", "a.epub", "b.pdf", "--data-dir", "/lib", "--settings", "/s.ini"])
    assert args.files == ["a.epub", "b.pdf"] and args.data_dir == "/lib" and args.settings == "/s.ini"
    seen = {}
    import app.gui.run

    monkeypatch.setattr(app.gui.run, "run", lambda **kw: seen.update(kw) or 0)
    assert args.handler(args) == 0
    assert seen == {"data_dir": "/lib", "settings_path": "/s.ini", "files": ["a.epub", "b.pdf"]}
