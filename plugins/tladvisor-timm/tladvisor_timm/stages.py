"""Freeze stages of a timm model from its ``feature_info``, as the fewest module paths that cover them.

timm lists, per model, the modules whose outputs are its feature maps (``layer1``..``layer4`` of a
ResNet, ``stages.0``..``stages.3`` of a ConvNeXt, ``blocks.N`` of a ViT). Stage *i* owns every
parameter defined after stage *i-1* up to the end of feature module *i*; what comes before the first
feature module is the ``stem``, what comes after the last (a final norm, a head conv) joins the last
stage, and the classifier is the head. Definition order is parameter order in PyTorch, so the stages
come out in the order :func:`tladvisor.modeling.freeze_stages` counts them.
"""

from __future__ import annotations

from torch import nn

from tladvisor.backbones import Stage

STEM = "stem"


def _subtree_ends(names: list[str]) -> dict[str, int]:
    """Position (in ``named_modules`` pre-order) of the last descendant of each module."""
    ends = {}
    for index, name in enumerate(names):
        end = index
        prefix = f"{name}." if name else ""
        while end + 1 < len(names) and names[end + 1].startswith(prefix):
            end += 1
        ends[name] = end
    return ends


def stage_of_each_parameter(model: nn.Module, feature_modules: list[str],
                            head: str | None) -> tuple[dict[str, int], list[str]]:
    """``{parameter name: stage index}`` (the head's parameters left out) and the stage names."""
    names = [name for name, _ in model.named_modules()]
    position = {name: index for index, name in enumerate(names)}
    ends = _subtree_ends(names)
    boundaries: list[tuple[str, int, int]] = []  # (name, first position, last position) of each feature module
    for module in feature_modules:
        if module in position and (not boundaries or position[module] > boundaries[-1][2]):
            boundaries.append((module, position[module], ends[module]))
    head_prefix = f"{head}." if head else None
    stage_names = [STEM] + [name for name, _, _ in boundaries]
    assignment = {}
    for name, _ in model.named_parameters():
        if head_prefix and (name + ".").startswith(head_prefix):
            continue
        owner = position[name.rpartition(".")[0]]
        if not boundaries or owner < boundaries[0][1]:
            assignment[name] = 0
            continue
        stage = next((i + 1 for i, (_, _, end) in enumerate(boundaries) if owner <= end), len(boundaries))
        assignment[name] = stage
    return assignment, stage_names


def _members(model: nn.Module, prefix: str, assignment: dict[str, int], out: dict[int, list[str]]) -> None:
    """Add to ``out[stage]`` the fewest paths under ``prefix``: a whole module when one stage owns it all."""
    def full(local: str) -> str:
        return f"{prefix}.{local}" if prefix else local

    module = model.get_submodule(prefix) if prefix else model
    owned = {assignment[full(n)] for n, _ in module.named_parameters() if full(n) in assignment}
    if not owned:
        return
    if len(owned) == 1 and prefix and all(full(n) in assignment for n, _ in module.named_parameters()):
        out[owned.pop()].append(prefix)
        return
    for local, _ in module.named_parameters(recurse=False):
        if full(local) in assignment:
            out[assignment[full(local)]].append(full(local))
    for child, _ in module.named_children():
        _members(model, full(child), assignment, out)


def stages_from_feature_info(model: nn.Module, feature_modules: list[str], head: str | None) -> tuple[Stage, ...]:
    """The freeze stages of ``model``; stages that would own no parameter are left out."""
    assignment, names = stage_of_each_parameter(model, feature_modules, head)
    members: dict[int, list[str]] = {index: [] for index in range(len(names))}
    _members(model, "", assignment, members)
    return tuple(Stage(names[index], tuple(paths)) for index, paths in members.items() if paths)
