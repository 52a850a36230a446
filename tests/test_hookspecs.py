"""Every hook is documented (its docstring is the contract) and has a test of its own (as datasette does).

A hook's own test is a function named ``test_hook_<hook name>`` or ``test_hook_<hook name>_<anything>``
anywhere under ``tests/`` or ``plugins/*/tests/``.
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass
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


@dataclass(frozen=True)
class HookTest:
    name: str
    asserts: bool  # holds an assert statement or a pytest.raises block
    mentions: frozenset[str]  # every name, attribute and string constant in its body: how it reaches the hook


def parse_hook_tests(source: str) -> list[HookTest]:
    """The ``test_hook_*`` functions of one test file's source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or not node.name.startswith("test_hook_"):
            continue
        body = [inner for statement in node.body for inner in ast.walk(statement)]
        raises = any(isinstance(n, ast.Attribute) and n.attr == "raises" for n in body)
        mentions = {n.attr for n in body if isinstance(n, ast.Attribute)}
        mentions |= {n.id for n in body if isinstance(n, ast.Name)}
        mentions |= {n.value for n in body if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        found.append(HookTest(node.name, any(isinstance(n, ast.Assert) for n in body) or raises, frozenset(mentions)))
    return found


@cache
def hook_tests() -> tuple[HookTest, ...]:
    """Every ``test_hook_*`` function in the repository's test files, with what its body does."""
    files = [*REPO_ROOT.glob("tests/**/*.py"), *REPO_ROOT.glob("plugins/*/tests/**/*.py")]
    found = []
    for path in files:
        try:
            found += parse_hook_tests(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue  # pytest reports a broken test file on its own
    return tuple(found)


def test_an_empty_hook_test_or_one_that_never_reaches_the_hook_does_not_count() -> None:
    empty, elsewhere, real = parse_hook_tests(
        "def test_hook_recommend_a():\n    pass\n"
        "def test_hook_recommend_b():\n    assert helper() == 1\n"
        "def test_hook_recommend_c(host):\n    assert host.call_first('recommend', x=1) is None\n")
    assert (empty.asserts, elsewhere.asserts, real.asserts) == (False, True, True)
    assert "recommend" not in elsewhere.mentions and "recommend" in real.mentions


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_hook_has_a_test_of_its_own(hook: str) -> None:
    """A test named after the hook that calls it (by name) and asserts something: an empty test, or one
    that never reaches the hook, does not count."""
    own = re.compile(rf"^test_hook_{hook}(_|$)")
    named = [t for t in hook_tests() if own.match(t.name)]
    assert named, f"hook '{hook}' has no test named test_hook_{hook}... under tests/ or plugins/*/tests/"
    word = re.compile(rf"\b{hook}\b")  # by name, or in a plugin's source the test writes
    real = [t for t in named if t.asserts and any(word.search(m) for m in t.mentions)]
    assert real, (f"hook '{hook}': its tests ({', '.join(t.name for t in named)}) must call the hook by name "
                  f"(host.hook.{hook}, call_first('{hook}'), ...) and assert something")
