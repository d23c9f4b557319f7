"""The layers stay apart: app/ never imports torch or transformers (nor engine internals that
would), engine/ never imports Qt, and opening the window module does not load torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ML = {"torch", "transformers"}
QT = {"PySide6", "PyQt5", "PyQt6", "PySide2", "qtpy"}
APP_MAY_IMPORT_FROM_ENGINE = {"engine.api", "engine.errors", "engine.books", "engine.library", "engine.paths"}


def imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
            if node.module == "engine":  # from engine import api
                found += [(f"engine.{alias.name}", node.lineno) for alias in node.names]
    return found


def sources(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def window_sources() -> list[Path]:
    return sources("app/gui") + [ROOT / "app" / "cli" / "gui.py"]


def test_app_never_imports_torch_or_transformers():
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sources("app")
        for name, line in imports(path)
        if name.split(".")[0] in ML
    ]
    assert not bad, "\n".join(bad)


def test_window_uses_only_the_facade_and_plain_data_modules():
    bad = []
    for path in window_sources():
        for name, line in imports(path):
            top = name.split(".")[0]
            if top == "engine" and name != "engine" and not any(
                name == allowed or name.startswith(allowed + ".") for allowed in APP_MAY_IMPORT_FROM_ENGINE
            ):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name} (only the facade and plain-data modules)")
    assert not bad, "\n".join(bad)


def test_engine_never_imports_qt():
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sources("engine")
        for name, line in imports(path)
        if name.split(".")[0] in QT
    ]
    assert not bad, "\n".join(bad)


def test_window_module_and_facade_do_not_load_torch():
    code = (
        "import sys\n"
        "import app.gui.main_window, app.gui.run, app.cli\n"
        "try:\n"
        "    import engine.api\n"
        "except ModuleNotFoundError:\n"
        "    pass\n"
        "heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr
