"""The README's examples are run, so they cannot drift from the code."""

import re
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from tladvisor.plugins import PluginHost
from tladvisor.testing import check_backbone

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_plugin_source() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (source,) = [b for b in blocks if b.startswith("# my_plugins/my_backbone.py")]
    return source


def test_readme_backbone_plugin_registers_loads_its_checkpoint_and_conforms(tmp_path):
    checkpoint = tmp_path / "my_cnn.safetensors"
    source = readme_plugin_source().replace("/data/checkpoints/my_cnn.safetensors", str(checkpoint))
    folder = tmp_path / "my_plugins"
    folder.mkdir()
    (folder / "my_backbone.py").write_text(source)

    host = PluginHost(folder)
    spec = host.backbone("my_cnn")
    assert spec.plugin == "my_backbone" and not host.failures
    assert spec.weights_available() is False
    assert check_backbone(spec) == []

    reference = spec.build(False)
    save_file(reference.state_dict(), checkpoint)
    assert spec.weights_available() is True
    loaded = spec.build(True)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_readme_lists_every_hook():
    from tladvisor import hookspecs

    text = README.read_text()
    hooks = [name for name in vars(hookspecs) if hasattr(getattr(hookspecs, name), "tladvisor_spec")]
    assert len(hooks) >= 10
    for name in hooks:
        assert f"`{name}`" in text, name


def readme_block(first_line: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (source,) = [b for b in blocks if b.startswith(first_line)]
    return source


def test_readme_strategy_measure_and_section_plugins_work(tmp_path):
    from tladvisor.measures.names import BUILT_IN_MEASURES
    from tladvisor.testing import check_measure_plugin

    folder = tmp_path / "my_plugins"
    folder.mkdir()
    for name in ("bitfit", "feature_norm", "class_notes"):
        (folder / f"{name}.py").write_text(readme_block(f"# my_plugins/{name}.py"))
    host = PluginHost(folder, load_entry_points=False)
    assert host.failures == []

    bitfit = host.strategies()["bitfit"]
    assert bitfit.plugin == "bitfit" and bitfit.trains("layer.bias") and not bitfit.trains("layer.weight")

    assert check_measure_plugin(sys.modules["tladvisor_plugins_dir.feature_norm"], reserved=BUILT_IN_MEASURES) == []

    (found,) = host.call("report_sections", run=None, analysis={"dataset": {"classes": ["a<b", "c"]}})
    assert found[0].order == 25 and "<li>a&lt;b</li>" in found[0].html
