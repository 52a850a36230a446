"""Every hook is documented (its docstring is the contract) and has a test of its own (as datasette does).

A hook's own test is a function named ``test_hook_<hook name>`` or ``test_hook_<hook name>_<anything>``
anywhere under ``tests/`` or ``plugins/*/tests/``.
"""

from __future__ import annotations

import ast
import inspect
import re
from functools import cache
from pathlib import Path

import pytest

from tladvisor import PROJECT_NAME, hookspecs
from tladvisor.plugins import PluginHost

REPO_ROOT = Path(__file__).resolve().parents[1]
HOOKS = {name: function for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
         if hasattr(function, f"{PROJECT_NAME}_spec")}


def test_hookspecs_are_found() -> None:
    assert {"register_backbones", "load_dataset", "recommend", "write_report"} <= set(HOOKS)
    host = PluginHost(load_entry_points=False, default_plugins=())
    assert all(getattr(host.pm.hook, name).has_spec() for name in HOOKS)


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_hook_is_documented(hook: str) -> None:
    doc = inspect.getdoc(HOOKS[hook]) or ""
    assert doc, f"hook '{hook}' has no docstring"
    missing = [arg for arg in inspect.signature(HOOKS[hook]).parameters if not re.search(rf"\b{arg}\b", doc)]
    assert not missing, f"docstring of hook '{hook}' does not mention its argument(s) {missing}"
    assert "Return" in doc, f"docstring of hook '{hook}' does not say what it returns ('Return ...')"


@cache
def hook_test_names() -> frozenset[str]:
    """Names of every ``test_hook_*`` function in the repository's test files."""
    files = [*REPO_ROOT.glob("tests/**/*.py"), *REPO_ROOT.glob("plugins/*/tests/**/*.py")]
    names = set()
    for path in files:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (SyntaxError, UnicodeDecodeError):
            continue  # pytest reports a broken test file on its own
        names.update(node.name for node in ast.walk(tree)
                     if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_hook_"))
    return frozenset(names)


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_hook_has_a_test_of_its_own(hook: str) -> None:
    own = re.compile(rf"^test_hook_{hook}(_|$)")
    assert any(own.match(name) for name in hook_test_names()), (
        f"hook '{hook}' has no test named test_hook_{hook}... under tests/ or plugins/*/tests/")
