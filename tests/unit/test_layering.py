"""The layers import downwards only: flows compose tasks; tasks/, config/, blocks/ and lambda/ never import a flow."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOWER_LAYERS = ("tasks", "config", "blocks", "lambda")


def imported_modules(path: Path) -> list[str]:
    """Every module an `import` or `from ... import` names in the file, wherever the statement sits."""
    out: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


def test_no_lower_layer_imports_a_flow() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for layer in LOWER_LAYERS
        for path in sorted((ROOT / layer).rglob("*.py"))
        for module in imported_modules(path)
        if module == "flows" or module.startswith("flows.")
    ]
    assert offenders == []


def test_the_check_sees_call_time_imports(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    from flows.common import RunOptions\n    import flows.parts\n", encoding="utf-8")
    assert imported_modules(sample) == ["flows.common", "flows.parts"]
