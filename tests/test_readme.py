"""The README's examples are run, so they cannot drift from the code."""

import re
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
