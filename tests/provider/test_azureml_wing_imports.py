"""Only the Azure ML v1 wing imports azureml, and only inside functions (the program and the
provider core must import without paying for it)."""

from __future__ import annotations

import ast
from pathlib import Path

INFRA = Path(__file__).resolve().parents[2] / "infra"
WING = INFRA / "provider" / "azureml_v1"


def _azureml_imports(tree: ast.AST) -> list[tuple[int, bool]]:
    """(line, at module level) of every import of azureml, including importlib by name."""
    found: list[tuple[int, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Call) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                names = [first.value] if "import" in ast.unparse(node.func) else []
        if any(n == "azureml" or n.startswith("azureml.") for n in names):
            found.append((getattr(node, "lineno", 0), top))
        inner = top and not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, True)
    return found


def test_only_the_azure_wing_imports_azureml_and_only_lazily() -> None:
    outside: list[str] = []
    eager: list[str] = []
    for path in sorted(INFRA.rglob("*.py")):
        for line, top in _azureml_imports(ast.parse(path.read_text(), str(path))):
            where = f"{path.relative_to(INFRA.parent)}:{line}"
            if WING not in path.parents:
                outside.append(where)
            elif top:
                eager.append(where)
    assert outside == [], "azureml imported outside infra/provider/azureml_v1"
    assert eager == [], "azureml imported at module level (import it inside functions)"


def test_the_check_sees_each_form_of_import() -> None:
    code = (
        "import azureml.core\n"
        "from azureml.pipeline.core import Pipeline\n"
        "import importlib\n"
        "def f():\n"
        "    from azureml.core import Workspace\n"
        "    return importlib.import_module('azureml.data')\n"
    )
    assert _azureml_imports(ast.parse(code)) == [(1, True), (2, True), (5, False), (6, False)]
