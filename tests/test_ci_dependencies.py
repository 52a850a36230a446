"""Under CI=true a test whose dependency is missing fails; on a developer's machine it is skipped."""

from __future__ import annotations

import pytest
from helpers import dependency_missing, require_module


def test_a_missing_dependency_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true and a test dependency is missing: no server"):
        dependency_missing("no server")
    with pytest.raises(pytest.fail.Exception, match="not installed"):
        require_module("a_module_that_does_not_exist_here", "not installed")


def test_a_missing_dependency_is_skipped_elsewhere(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no server"):
        dependency_missing("no server")
    assert require_module("json", "never missing").dumps([1]) == "[1]"
