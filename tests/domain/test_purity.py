"""The domain is pure: it may import only the standard library and itself."""

import ast
import sys
from pathlib import Path

import app.domain

DOMAIN_DIR = Path(app.domain.__file__).parent


def imported_roots(source: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_domain_imports_only_the_standard_library() -> None:
    modules = sorted(DOMAIN_DIR.glob("*.py"))
    assert len(modules) > 5
    for module in modules:
        source = module.read_text()
        for root in imported_roots(source):
            assert root == "app" or root in sys.stdlib_module_names, f"{module.name} imports {root}"


def test_domain_imports_nothing_for_io() -> None:
    forbidden = {"sqlalchemy", "fastapi", "httpx", "asyncio", "socket", "os", "io", "pathlib"}
    for module in DOMAIN_DIR.glob("*.py"):
        assert not imported_roots(module.read_text()) & forbidden, module.name


def test_app_imports_are_only_of_the_domain_itself() -> None:
    for module in DOMAIN_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("app"):
                assert node.module.startswith("app.domain"), f"{module.name}: {node.module}"
