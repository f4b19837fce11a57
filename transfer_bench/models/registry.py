"""Model name registry, deterministic construction and the head/prunable bookkeeping.

Builders are registered by name with :func:`register_model` (cf. timm's registry); a name ending in
``":"`` registers a family (``"timm:"`` builds every ``timm:<name>``). :func:`build_model` validates the
request, runs the builder with the CPU RNG forked and seeded (so init is a pure function of ``seed``
and global RNG state is left untouched), and attaches the plain attributes of the contract:
``prunable_names``, ``head_names`` and ``model_spec``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from transfer_bench.errors import ModelError

#: ``builder(name, *, num_classes, in_channels, image_size, options) -> (module, head_module_paths)``.
#: ``head_module_paths`` are dotted module paths (as in ``named_modules()``) whose parameters form the
#: classifier head. Builders may use the global torch RNG freely: it is forked and seeded around them.
Builder = Callable[..., tuple[nn.Module, tuple[str, ...]]]

#: ``head_init(model, generator)`` re-initializes ``model.head_names`` in place from ``generator``.
HeadInit = Callable[[nn.Module, torch.Generator], None]


@dataclass(frozen=True)
class ModelEntry:
    """A registered builder and how to re-initialize its head (``None`` = rebuild and copy)."""

    name: str
    builder: Builder
    head_init: HeadInit | None


_REGISTRY: dict[str, ModelEntry] = {}

_PRUNABLE_TYPES = (nn.Conv2d, nn.Linear)


def register_model(name: str, *, head_init: HeadInit | None = None) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder`` under ``name`` (a family if ``name`` ends with ``":"``).

    ``head_init`` re-initializes the head with the model's own init distribution; when omitted,
    :func:`reset_head` rebuilds the model from a generator-drawn seed and copies its fresh head, which
    reproduces the builder's distribution exactly for any architecture (at the cost of a build).
    """

    def decorate(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is registered twice")
        _REGISTRY[name] = ModelEntry(name=name, builder=builder, head_init=head_init)
        return builder

    return decorate


def list_models() -> list[str]:
    """Registered names, sorted; families are listed as ``"<prefix>:<name>"`` (e.g. ``timm:<name>``)."""
    return sorted(n + "<name>" if n.endswith(":") else n for n in _REGISTRY)


def _lookup(name: str) -> ModelEntry:
    if not isinstance(name, str) or not name:
        raise ModelError(f"model name must be a non-empty string, got {name!r}; set model.name")
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        prefix = name.split(":", 1)[0] + ":"
        if prefix in _REGISTRY and name != prefix:
            return _REGISTRY[prefix]
    known = list_models()
    close = difflib.get_close_matches(name, [n for n in _REGISTRY if not n.endswith(":")], n=3)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    raise ModelError(f"model.name {name!r} is unknown; {hint}known models: {', '.join(known)}")


def _positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelError(f"{what} must be a positive integer, got {value!r}")
    return value


def check_options(
    model_name: str, options: Mapping[str, Any], allowed: Mapping[str, Any]
) -> dict[str, Any]:
    """Return ``allowed`` (the defaults) updated with ``options``; unknown keys raise ModelError."""
    for key in options:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), list(allowed), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            valid = ", ".join(sorted(allowed)) or "none"
            raise ModelError(
                f"model {model_name!r} has no option {key!r}; {hint}valid options: {valid} "
                "(fix model.options)"
            )
    return {**allowed, **options}


def build_model(
    name: str,
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    seed: int,
    options: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Build registered model ``name`` for ``[N, in_channels, image_size, image_size]`` inputs.

    Init is a deterministic function of ``seed`` and the arguments; the global RNG is untouched.
    The result carries ``prunable_names``, ``head_names`` and ``model_spec`` (see the contract).
    """
    entry = _lookup(name)
    _positive_int(num_classes, "num_classes")
    _positive_int(in_channels, "in_channels")
    _positive_int(image_size, "image_size")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise ModelError(f"model seed must be an integer in [0, 2**64), got {seed!r}")
    if options is not None and not isinstance(options, Mapping):
        raise ModelError(f"model.options must be a mapping, got {type(options).__name__}")
    opts = dict(options or {})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, head_paths = entry.builder(
            name,
            num_classes=num_classes,
            in_channels=in_channels,
            image_size=image_size,
            options=opts,
        )
    model.prunable_names = _find_prunable(model)
    model.head_names = _find_head(model, name, head_paths)
    model.model_spec = {
        "name": name,
        "num_classes": num_classes,
        "in_channels": in_channels,
        "image_size": image_size,
        "options": opts,
    }
    return model


def _find_prunable(model: nn.Module) -> tuple[str, ...]:
    """Names of the weights (dim > 1) of all Conv2d / Linear modules, in ``named_parameters`` order."""
    ids = {
        id(m.weight)
        for m in model.modules()
        if isinstance(m, _PRUNABLE_TYPES) and isinstance(getattr(m, "weight", None), nn.Parameter)
    }
    return tuple(n for n, p in model.named_parameters() if id(p) in ids and p.dim() > 1)


def _find_head(model: nn.Module, name: str, head_paths: Iterable[str]) -> tuple[str, ...]:
    modules = dict(model.named_modules())
    names = {id(p): n for n, p in model.named_parameters()}
    head: list[str] = []
    for path in head_paths:
        if path not in modules:
            raise ModelError(f"model {name!r}: classifier module {path!r} not found in the network")
        for p in modules[path].parameters():
            if id(p) in names and names[id(p)] not in head:
                head.append(names[id(p)])
    if not head:
        raise ModelError(f"model {name!r}: classifier {tuple(head_paths)} has no parameters")
    return tuple(head)


def _require_attrs(model: nn.Module) -> None:
    for attr in ("prunable_names", "head_names", "model_spec"):
        if not hasattr(model, attr):
            raise ModelError(
                f"model has no {attr!r} attribute; build it with transfer_bench.models.build_model"
            )


def prunable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """``{name: parameter}`` for ``model.prunable_names`` (head weight included)."""
    _require_attrs(model)
    params = dict(model.named_parameters())
    return {n: params[n] for n in model.prunable_names}


def head_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """``{name: parameter}`` for ``model.head_names`` (the classifier layer's weight and bias)."""
    _require_attrs(model)
    params = dict(model.named_parameters())
    return {n: params[n] for n in model.head_names}


def reset_head(model: nn.Module, generator: torch.Generator) -> None:
    """Re-initialize exactly the head parameters from ``generator`` with the model's init distribution.

    Deterministic given the generator state; global RNG state is neither read nor written. Works for
    models on any device (values are drawn on CPU and copied).
    """
    _require_attrs(model)
    if not isinstance(generator, torch.Generator):
        raise ModelError(f"reset_head needs a torch.Generator, got {type(generator).__name__}")
    entry = _lookup(model.model_spec["name"])
    if entry.head_init is not None:
        entry.head_init(model, generator)
        return
    seed = int(torch.randint(0, 2**63 - 1, (1,), generator=generator).item())
    spec = model.model_spec
    fresh = build_model(
        spec["name"],
        num_classes=spec["num_classes"],
        in_channels=spec["in_channels"],
        image_size=spec["image_size"],
        seed=seed,
        options=spec["options"],
    )
    src = dict(fresh.named_parameters())
    with torch.no_grad():
        for n, p in head_parameters(model).items():
            p.copy_(src[n])


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Dense forward FLOPs (2 x multiply-accumulates) of all Conv2d/Linear layers.

    ``input_shape`` is ``(C, H, W)`` for one example or ``(N, C, H, W)`` for a batch. Biases,
    normalization and activations are ignored. Runs one no-grad forward in eval mode on zeros.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4:
        raise ModelError(f"count_flops input_shape must be (C, H, W) or (N, C, H, W), got {shape}")
    total = 0

    def hook(module: nn.Module, _inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total += out.numel() * (module.in_channels // module.groups) * k
        else:
            total += out.numel() * module.in_features

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, _PRUNABLE_TYPES)
    ]
    param = next(model.parameters(), None)
    x = torch.zeros(
        shape,
        dtype=param.dtype if param is not None else torch.float32,
        device=param.device if param is not None else None,
    )
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return 2 * total
