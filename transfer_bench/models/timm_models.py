"""``timm:<name>``: any timm architecture, built from scratch (no pretrained weights).

``timm.create_model(name, pretrained=False, num_classes=..., in_chans=..., **options)``. The head is
taken from timm's own metadata (``pretrained_cfg["classifier"]``, a module path or tuple of paths).
``reset_head`` uses the registry's generic rebuild-and-copy, so a re-drawn head follows exactly the
architecture's own init. timm is imported lazily: importing it costs about a second.
"""

from __future__ import annotations

import difflib
from typing import Any

import torch
from torch import nn

from transfer_bench.errors import ModelError
from transfer_bench.models.registry import register_model

_RESERVED = {
    "pretrained": "pretrained weights are not supported (no hub access); drop the option",
    "num_classes": "it is set from the dataset; drop the option",
    "in_chans": "it is set from input.channels; drop the option",
}


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def _head_paths(model: nn.Module, name: str) -> tuple[str, ...]:
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    classifier = cfg.get("classifier")
    paths = (classifier,) if isinstance(classifier, str) else tuple(classifier or ())
    modules = dict(model.named_modules())
    if paths and all(p in modules for p in paths):
        return paths
    get_classifier = getattr(model, "get_classifier", None)
    if callable(get_classifier):
        head = get_classifier()
        for path, module in modules.items():
            if module is head and path:
                return (path,)
    raise ModelError(
        f"model {name!r}: timm metadata names no classifier module; pick another model"
    )


@register_model("timm:")
def timm_model(
    name: str, *, num_classes: int, in_channels: int, image_size: int, options: dict[str, Any]
) -> tuple[nn.Module, tuple[str, ...]]:
    """Build a timm model from scratch and check one forward at ``image_size``."""
    try:
        import timm
    except ImportError as err:  # pragma: no cover - timm is a hard dependency
        raise ModelError(f"model {name!r} needs timm: pip install timm ({err})") from None
    arch = name.split(":", 1)[1]
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(repr('timm:' + c) for c in close)}?" if close else ""
        raise ModelError(
            f"model.name {name!r}: timm has no model {arch!r}{hint} (see timm.list_models())"
        )
    for key, why in _RESERVED.items():
        if key in options:
            raise ModelError(f"model {name!r} option {key!r} is not allowed: {why}")
    try:
        model = timm.create_model(
            arch, pretrained=False, num_classes=num_classes, in_chans=in_channels, **options
        )
    except Exception as err:
        raise ModelError(
            f"model {name!r} could not be built with options {options}: {_first_line(err)}; "
            "fix model.options"
        ) from None
    head = _head_paths(model, name)
    try:
        model.eval()
        with torch.no_grad():
            out = model(torch.zeros(1, in_channels, image_size, image_size))
    except Exception as err:
        raise ModelError(
            f"model {name!r} cannot run on {in_channels}x{image_size}x{image_size} inputs "
            f"({_first_line(err)}); pick another model or pass e.g. model.options.img_size"
        ) from None
    finally:
        model.train()
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"model {name!r} returns {shape}, expected logits (1, {num_classes})")
    return model, head
