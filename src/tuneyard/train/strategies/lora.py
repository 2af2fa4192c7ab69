"""``lora``: PEFT LoRA adapters on chosen modules of chosen layers; the task's head trains in full.

``--lora-targets`` default to every linear layer of the model's blocks (its layout, named
inside a block: ``self_attn.q_proj``); ``attn``, ``mlp`` and ``all-linear`` pick the
block's attention or MLP layers or all of them; other names are PEFT's module-name
suffixes. ``--lora-layers`` (``0,1,2``, ``7-12``) becomes PEFT's ``layers_to_transform``
with the block list's name as ``layers_pattern``, so only those blocks get adapters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuneyard.errors import TrainingError
from tuneyard.models.layout import LAYER_KINDS, layout_of
from tuneyard.task_types.base import AdaptedTower
from tuneyard.train.layers import check_layers, parse_layers
from tuneyard.train.plan import training_settings

if TYPE_CHECKING:
    from torch import nn

    from tuneyard.models.layout import ModelLayout
    from tuneyard.task_types.base import LoraScope, TaskType
    from tuneyard.train.options import FinetuneOptions

NAME = "lora"
DEFAULT_LEARNING_RATE = 2e-4


def selected_layers(layout: ModelLayout, options: FinetuneOptions) -> list[int] | None:
    """The ``--lora-layers`` as numbers, checked against the model's blocks (None: all)."""
    spec = options.lora.layers
    if spec is None:
        return None
    layers = parse_layers(spec)
    check_layers(spec, layers, layout.num_blocks)
    return layers


def selected_targets(layout: ModelLayout, options: FinetuneOptions, layers: list[int] | None) -> list[str]:
    """The modules that get adapters: ``--lora-targets`` with its kind words expanded to the
    blocks' layers (named so PEFT matches exactly those, see :func:`block_layer_targets`)."""
    targets: list[str] = []
    for target in options.lora.targets or ["all-linear"]:
        kind = target in LAYER_KINDS
        targets += block_layer_targets(layout, layout.targets(target), layers) if kind else [target]
    if not targets:
        raise TrainingError(
            f"--lora-targets {','.join(options.lora.targets or [])} names no layer of this "
            f"{layout.arch} model's blocks.",
            f"Its attention layers: {', '.join(layout.attention) or 'none'}; "
            f"its MLP layers: {', '.join(layout.ffn) or 'none'}.",
        )
    return list(dict.fromkeys(targets))


def block_layer_targets(layout: ModelLayout, names: tuple[str, ...], layers: list[int] | None) -> list[str]:
    """``names`` (block layers) as PEFT target names that match those layers and no others.

    PEFT matches a target as a module-name suffix, so BERT's ``output.dense`` (the MLP's
    output) also matches ``attention.output.dense``: a layer whose name ends another block
    layer that is not a target is named with its block instead (``layer.3.output.dense``,
    for each chosen block), so ``--lora-targets mlp`` adapts no attention layer.
    """
    chosen = set(names)
    blocks = range(layout.num_blocks) if layers is None else layers
    targets: list[str] = []
    for name in names:
        clash = any(o.endswith(f".{name}") and o not in chosen for o in layout.compressible if o != name)
        targets += [f"{layout.layers_pattern}.{block}.{name}" for block in blocks] if clash else [name]
    return targets


def scoped_targets(model: nn.Module, options: FinetuneOptions, scope: LoraScope) -> list[str]:
    """Full module names of the chosen layers in every tower of ``scope`` (``--lora-layers`` choose the
    main tower's blocks, the scope the others'), so a name two towers share adapts only the blocks chosen."""
    towers = [AdaptedTower(scope.main, options.lora.layers or "all", "--lora-layers"), *scope.others]
    targets: list[str] = []
    for tower in towers:
        layout = layout_of(model.get_submodule(tower.path))
        blocks: list[int] | range = range(layout.num_blocks)
        if tower.layers != "all":
            blocks = parse_layers(tower.layers, tower.option)
            check_layers(tower.layers, blocks, layout.num_blocks, tower.option)
        names = selected_targets(layout, options, None)
        targets += [f"{tower.path}.{layout.blocks}.{block}.{name}" for block in blocks for name in names]
    return targets


def apply(model: nn.Module, options: FinetuneOptions, layout: ModelLayout, task_type: TaskType) -> nn.Module:
    """Wrap ``model`` in a PEFT model with LoRA adapters; the task type's head trains in full."""
    from peft import LoraConfig, get_peft_model

    from tuneyard.models.lowrank import lowrank_layers

    if any(True for _ in lowrank_layers(model)):
        raise TrainingError(
            "--strategy lora does not apply to a compressed model: its layers are low-rank already.",
            "Use --strategy lowrank to train the factors (the default for compressed models).",
        )
    if options.gradient_checkpointing:
        # A checkpointed block recomputes from its input, which must require grad for the
        # adapters inside it to get one: the frozen embeddings' output does not, unless told.
        model.enable_input_require_grads()  # type: ignore[operator]
    scope = task_type.model.lora_scope(model, training_settings(options, task_type).task_options)
    layers = selected_layers(layout, options)
    if scope is None:
        targets = selected_targets(layout, options, layers)
    else:
        targets = scoped_targets(model, options, scope)
    config = LoraConfig(
        task_type=task_type.model.peft_task_type,
        r=options.lora.r,
        lora_alpha=options.lora.alpha,
        lora_dropout=options.lora.dropout,
        target_modules=targets,
        layers_to_transform=layers if scope is None else None,
        layers_pattern=layout.layers_pattern if layers is not None and scope is None else None,
        modules_to_save=[*task_type.model.head_modules(model), *(scope.trained if scope else ())],
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise TrainingError(
            f"LoRA could not be applied with targets {targets}: {exc}",
            f"Choose --lora-targets among {', '.join(LAYER_KINDS)} or the model's block layers: "
            f"{', '.join(layout.compressible)}.",
        ) from exc
