"""Finding, loading and calling plugins: built-ins, plugins folder, entry points, and failure isolation."""

from __future__ import annotations

import importlib.metadata
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tladvisor.errors import BackboneError, PluginError
from tladvisor.plugins import DEFAULT_PLUGINS, ENTRY_POINT_GROUP, PLUGINS_DIR_ENV, PluginHost
from tladvisor.records import PluginFailure
from tladvisor.testing import check_backbone

ONE_FILE_EXAMPLE = Path(__file__).parents[1] / "plugins" / "tladvisor-example-backbone" / "my_backbone.py"

TINY_BACKBONE_PLUGIN = """
    from tladvisor import hookimpl
    from tladvisor.testing import tiny_backbone_spec

    @hookimpl
    def register_backbones(register):
        register(tiny_backbone_spec({name!r}))
"""


def isolated_host(folder: Path) -> PluginHost:
    """Only the plugins in ``folder``: no built-ins, no installed packages."""
    return PluginHost(folder, load_entry_points=False, default_plugins=())


def test_default_plugins_all_load() -> None:
    host = PluginHost(load_entry_points=False)
    built_in = {info.name: info for info in host.plugins() if info.source == "built-in"}
    assert list(built_in) == list(DEFAULT_PLUGINS)
    assert host.failures == []
    assert "register_backbones" in built_in["tladvisor.builtin.torchvision_zoo"].hooks


def test_hook_register_backbones_from_a_file_in_the_plugins_folder(tmp_path: Path) -> None:
    folder = tmp_path / "my_plugins"
    folder.mkdir()
    shutil.copy(ONE_FILE_EXAMPLE, folder)
    host = PluginHost(plugins_dir=folder, load_entry_points=False)

    info = {plugin.name: plugin for plugin in host.plugins()}["my_backbone"]
    assert (info.version, info.hooks) == ("0.1.0", ("register_backbones",))
    assert info.source == f"plugins dir ({folder / 'my_backbone.py'})"
    spec = host.backbones()["my_backbone"]
    assert spec.plugin == "my_backbone"
    assert "resnet18" in host.backbones()  # the built-ins still stand beside it
    assert check_backbone(spec) == []
    assert host.failures == []


def test_plugins_folder_from_the_environment(write_plugin: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_plugin("from_env", TINY_BACKBONE_PLUGIN.format(name="env_cnn"))
    monkeypatch.setenv(PLUGINS_DIR_ENV, str(folder))
    host = PluginHost(load_entry_points=False, default_plugins=())
    assert [info.name for info in host.plugins()] == ["from_env"]
    assert host.plugins()[0].version == "unversioned"
    assert host.backbone("env_cnn").plugin == "from_env"


def test_a_missing_plugins_folder_is_a_plugin_error(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="plugins folder .*nowhere does not exist"):
        PluginHost(tmp_path / "nowhere", load_entry_points=False)


def test_a_plugin_that_fails_to_import_is_recorded_and_the_others_load(write_plugin: Callable) -> None:
    write_plugin("broken", "import a_module_that_is_not_installed\n")
    folder = write_plugin("working", TINY_BACKBONE_PLUGIN.format(name="ok_cnn"))
    host = isolated_host(folder)

    assert [info.name for info in host.plugins()] == ["working"]
    assert "ok_cnn" in host.backbones()
    [failure] = host.failures
    assert (failure.plugin, failure.hook) == ("broken", "import")
    assert "ModuleNotFoundError" in failure.error and "a_module_that_is_not_installed" in failure.error
    assert str(folder / "broken.py") in failure.error


def test_a_hook_that_raises_is_recorded_and_call_each_keeps_the_other_results(write_plugin: Callable) -> None:
    write_plugin("sections_ok", """
        from tladvisor import hookimpl

        @hookimpl
        def report_sections(run):
            return ["from sections_ok"]
    """)
    folder = write_plugin("sections_broken", """
        from tladvisor import hookimpl

        @hookimpl
        def report_sections(run):
            raise ValueError("template missing\\nsee the log")
    """)
    host = isolated_host(folder)

    assert host.call_each("report_sections", run=None) == [("sections_ok", ["from sections_ok"])]
    assert host.failures == [PluginFailure("sections_broken", "report_sections",
                                           "ValueError: template missing see the log")]


def test_call_first_falls_through_to_the_next_implementation(write_plugin: Callable) -> None:
    write_plugin("a_fallback", """
        from tladvisor import hookimpl

        @hookimpl
        def recommend(profile, measurements, options):
            return "fallback advice"
    """)
    folder = write_plugin("z_preferred", """
        from tladvisor import hookimpl

        @hookimpl
        def recommend(profile, measurements, options):
            raise RuntimeError("division by zero in the rule")
    """)
    host = isolated_host(folder)  # pluggy calls the last registered (z_preferred) first

    assert host.call_first("recommend", profile=None, measurements=[], options=None) == "fallback advice"
    assert [(f.plugin, f.hook) for f in host.failures] == [("z_preferred", "recommend")]


def test_call_first_passes_over_none(write_plugin: Callable) -> None:
    write_plugin("a_answers", """
        from tladvisor import hookimpl

        @hookimpl
        def recommend(options):  # a plugin may accept only the arguments it needs
            return options["answer"]
    """)
    folder = write_plugin("z_declines", """
        from tladvisor import hookimpl

        @hookimpl
        def recommend(profile):
            return None
    """)
    host = isolated_host(folder)
    assert host.call_first("recommend", profile=None, measurements=[], options={"answer": 42}) == 42
    assert host.failures == []


def test_a_misspelt_hook_is_a_plugin_error_suggesting_the_real_name(write_plugin: Callable) -> None:
    folder = write_plugin("typo", """
        from tladvisor import hookimpl

        @hookimpl
        def regster_backbones(register):
            pass
    """)
    with pytest.raises(PluginError) as caught:
        isolated_host(folder)
    message = str(caught.value)
    assert "'typo'" in message and "'regster_backbones'" in message
    assert "did you mean 'register_backbones'" in message


def test_hook_register_backbones_same_name_twice_is_reported_naming_both_plugins(write_plugin: Callable) -> None:
    write_plugin("first_zoo", TINY_BACKBONE_PLUGIN.format(name="twin"))
    folder = write_plugin("second_zoo", TINY_BACKBONE_PLUGIN.format(name="twin"))
    host = isolated_host(folder)

    kept = host.backbones()["twin"].plugin
    [failure] = host.failures
    assert {kept, failure.plugin} == {"first_zoo", "second_zoo"}
    assert failure.hook == "register_backbones"
    assert f"backbone 'twin' is already registered by plugin '{kept}'" in failure.error


def test_hook_register_backbones_rejects_what_is_not_a_spec(write_plugin: Callable) -> None:
    folder = write_plugin("sloppy", """
        from tladvisor import hookimpl

        @hookimpl
        def register_backbones(register):
            register("resnet18")
    """)
    host = isolated_host(folder)
    assert host.backbones() == {}
    assert host.failures == [PluginFailure("sloppy", "register_backbones",
                                           "TypeError: register() takes a BackboneSpec, got str")]


def test_unknown_backbone_name_suggests_the_closest(tmp_path: Path) -> None:
    host = PluginHost(load_entry_points=False)
    with pytest.raises(BackboneError, match="unknown backbone 'resnet81' \\(did you mean 'resnet18'\\?\\)"):
        host.backbone("resnet81")


def test_entry_point_plugins_are_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tladvisor_fake_zoo.py").write_text(textwrap.dedent(TINY_BACKBONE_PLUGIN.format(name="fake_cnn")))
    monkeypatch.syspath_prepend(str(tmp_path))
    fake = [importlib.metadata.EntryPoint("fake_zoo", "tladvisor_fake_zoo", ENTRY_POINT_GROUP),
            importlib.metadata.EntryPoint("gone", "tladvisor_uninstalled_plugin", ENTRY_POINT_GROUP)]
    asked = []

    def entry_points(**selection):
        asked.append(selection)
        return [ep for ep in fake if ep.group == selection.get("group")]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    host = PluginHost(default_plugins=())

    assert asked == [{"group": "tladvisor"}]
    [info] = host.plugins()
    assert (info.name, info.source, info.hooks) == ("fake_zoo", "entry point (tladvisor_fake_zoo)", ("register_backbones",))
    assert host.backbone("fake_cnn").plugin == "fake_zoo"
    [failure] = host.failures
    assert (failure.plugin, failure.hook) == ("gone", "import") and "ModuleNotFoundError" in failure.error


def test_call_honours_the_specs_firstresult(write_plugin: Callable) -> None:
    write_plugin("a_rule", """
        from tladvisor import hookimpl
        from tladvisor.records import ReportSection

        @hookimpl
        def recommend(options):
            return "a's advice"

        @hookimpl
        def report_sections(analysis):
            return [ReportSection("a", "A", "<p>a</p>")]
    """)
    folder = write_plugin("b_rule", """
        from tladvisor import hookimpl
        from tladvisor.records import ReportSection

        @hookimpl
        def recommend(options):
            return "b's advice"

        @hookimpl
        def report_sections(analysis):
            return [ReportSection("b", "B", "<p>b</p>")]
    """)
    host = isolated_host(folder)
    assert host.is_firstresult("recommend") and not host.is_firstresult("report_sections")
    assert host.call("recommend", profile=None, measurements=[], options=None) == "b's advice"  # one result
    found = host.call("report_sections", run=None, analysis={})  # every result, in call order
    assert [[s.id for s in sections] for sections in found] == [["b"], ["a"]]


@pytest.mark.parametrize("marker", ["wrapper=True", "hookwrapper=True"])
def test_a_hook_wrapper_is_refused_at_registration(write_plugin: Callable, marker: str) -> None:
    folder = write_plugin("wraps", f"""
        from tladvisor import hookimpl

        @hookimpl({marker})
        def recommend(profile, measurements, options):
            result = yield
            return result
    """)
    with pytest.raises(PluginError, match=r"plugin 'wraps' marks recommend as a hook wrapper.*never runs"):
        isolated_host(folder)
