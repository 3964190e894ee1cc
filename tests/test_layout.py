"""The dependency rule: stages import the core, never each other; the core imports no stage.
Only the composers (`cli`, `display`, `pipeline`) may import stages."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "docfinetune"
STAGES = {"ingest", "build", "train", "evaluate", "ask", "export"}
COMPOSERS = {"cli", "display", "pipeline", "__main__"}


def area_of(module: str) -> str:
    """docfinetune.build.generators.rules -> build; docfinetune.core.config -> core."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports_of(path: Path) -> set[str]:
    """Every docfinetune module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("docfinetune."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "docfinetune":
                found.update(f"docfinetune.{a.name}" for a in node.names)
            elif node.module.startswith("docfinetune."):
                found.add(node.module)
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def violations() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = area_of(module_name(path))
        if here in COMPOSERS:
            continue
        for target in sorted(imports_of(path)):
            there = area_of(target)
            if there == here or there in ("", "__version__"):
                continue
            if there in STAGES:
                found.append(f"{module_name(path)} imports {target}")
    return found


def test_stages_import_only_the_core():
    assert violations() == []


def test_every_module_is_in_a_known_area():
    areas = {area_of(module_name(p)) for p in PACKAGE.rglob("*.py")} - {""}
    assert areas <= STAGES | COMPOSERS | {"core"}, areas - STAGES - COMPOSERS - {"core"}


def test_the_checker_sees_a_violation(tmp_path):
    # The rule test must be able to fail: a stage importing another stage inside a function.
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from docfinetune.build import build\n")
    assert "docfinetune.build" in imports_of(bad)
    assert area_of("docfinetune.build.generators.rules") == "build"
