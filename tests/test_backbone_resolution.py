"""The resolve_backbone hook: backbones built by name on demand, for zoos too large to register (timm)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tladvisor.cli import main
from tladvisor.errors import BackboneError
from tladvisor.plugins import PluginHost

RESOLVER = '''
    from tladvisor import hookimpl
    from tladvisor.errors import BackboneError
    from tladvisor.testing import tiny_backbone_spec

    CALLS = []

    @hookimpl
    def register_backbones(register):
        register(tiny_backbone_spec("zoo-listed"))

    @hookimpl
    def resolve_backbone(name):
        """zoo-<width>: a tiny net of any width, e.g. zoo-8"""
        CALLS.append(name)
        if not name.startswith(("zoo-", "zoo/")):
            return None
        width = name[4:]
        if not width.isdigit():
            raise BackboneError(f"zoo backbone '{name}': the width must be a number")
        if width == "0":
            return "not a spec"
        return tiny_backbone_spec(f"zoo-{int(width)}", width=int(width))  # canonical: zoo-08 -> zoo-8
'''


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "zoo.py").write_text(textwrap.dedent(RESOLVER))
    return tmp_path


def test_hook_resolve_backbone_builds_an_unregistered_name_once_under_its_canonical_name(folder: Path) -> None:
    host = PluginHost(folder, load_entry_points=False, default_plugins=())
    calls = __import__("tladvisor_plugins_dir.zoo", fromlist=["CALLS"]).CALLS
    assert list(host.backbones()) == ["zoo-listed"]
    spec = host.backbone("zoo/08")
    assert (spec.name, spec.feature_dim, spec.plugin) == ("zoo-8", 32, "zoo")
    assert host.backbone("zoo-8") is spec and host.backbone("zoo/08") is spec  # kept: no second build
    assert host.backbone("zoo-listed").name == "zoo-listed"  # registered names never reach the hook
    assert calls == ["zoo/08"]
    assert "zoo-8" in host.backbones()


def test_hook_resolve_backbone_none_error_and_wrong_type(folder: Path) -> None:
    host = PluginHost(folder, load_entry_points=False, default_plugins=())
    with pytest.raises(BackboneError, match="unknown backbone 'resnet'"):
        host.backbone("resnet")  # the hook returned None: not of its form
    with pytest.raises(BackboneError, match="width must be a number"):
        host.backbone("zoo-wide")  # of its form but wrong: the plugin's own one line
    with pytest.raises(BackboneError, match="unknown backbone 'zoo-0'"):
        host.backbone("zoo-0")
    assert [(f.plugin, f.hook) for f in host.failures] == [("zoo", "resolve_backbone")]
    assert "not a BackboneSpec" in host.failures[0].error


def test_backbones_command_says_which_names_resolve_on_demand(folder: Path, capsys) -> None:
    assert main(["--plugins-dir", str(folder), "backbones", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {"plugin": "zoo", "names": "zoo-<width>: a tiny net of any width, e.g. zoo-8"} in listed["on_demand"]
    assert main(["--plugins-dir", str(folder), "backbones"]) == 0
    assert "Plugin 'zoo' also builds backbones by name: zoo-<width>" in capsys.readouterr().out
