"""What each transfer strategy name means, for the report's tooltips and its glossary under the trials."""

from __future__ import annotations

STRATEGIES = {
    "feature_extraction": "every backbone stage frozen; only a new classification head is trained",
    "partial_freeze": "the first k stages frozen (generic features), the later ones fine-tuned with the head",
    "full_finetune": "every stage trained from the pretrained weights, earlier stages at lower learning rates "
                     "(layer-wise decay)",
    "from_scratch": "the same network from random weights: no transfer at all",
    "lp_ft": "linear probe, then fine-tune (LP-FT, Kumar et al. 2022): the head is first trained on the frozen "
             "backbone, then everything is fine-tuned from that head, so a random head does not distort the "
             "pretrained features early on; tried by the tuner, never the advice itself",
}


def explain(strategy: str | None) -> str:
    """One sentence for a strategy name ('' when unknown)."""
    return STRATEGIES.get(strategy or "", "")


def entries(strategies) -> list[tuple[str, str]]:
    """(label, meaning) for the strategies that appear, in the glossary's order."""
    present = set(strategies)
    return [(name.replace("_", " "), meaning) for name, meaning in STRATEGIES.items() if name in present]
