"""Loading a ticket into a model, possibly one with a different classifier head.

Transfer to a target with another class count keeps every non-head weight of the ticket and replaces
the head by a freshly initialized one (``reset_head``) carrying a random mask of the ticket's head
density, drawn from an explicit generator so that the result is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from transfer_bench.errors import TicketError
from transfer_bench.models import reset_head as default_reset_head
from transfer_bench.tickets.format import Ticket

HEAD_MODES = ("auto", "reinit", "keep")

ResetHead = Callable[[torch.nn.Module, torch.Generator], None]


def _err(reason: str, fix: str) -> TicketError:
    return TicketError(" ".join(f"{reason}; {fix}".split()))


def _model_attr(model: torch.nn.Module, attr: str) -> tuple[str, ...]:
    value = getattr(model, attr, None)
    if value is None:
        raise _err(
            f"model {type(model).__name__} has no {attr!r} attribute",
            "build it with transfer_bench.models.build_model",
        )
    return tuple(value)


def _ticket_tensor(ticket: Ticket, name: str) -> torch.Tensor | None:
    if name in ticket.weights:
        return ticket.weights[name]
    return ticket.state.get(name)


def _shape_of(tensor: torch.Tensor | None) -> str:
    return "absent" if tensor is None else str(list(tensor.shape))


def check_compatible(ticket: Ticket, model: torch.nn.Module) -> None:
    """Raise ``TicketError`` naming the first parameter where ``model`` does not fit ``ticket``.

    The prunable parameters are compared in the model's order: names must match and, outside the
    head, shapes too. The message gives the name and both shapes (model's and ticket's) of the
    first mismatch, and what the ticket holds at that position when the names differ.
    """
    arch = ticket.meta.get("model", {}).get("name", "?")
    fix = f"build the same architecture as the ticket ({arch!r}) for the target input"
    model_names = _model_attr(model, "prunable_names")
    model_heads = _model_attr(model, "head_names")
    ticket_names = ticket.prunable_names
    params = dict(model.named_parameters())
    heads = set(model_heads)
    for i, name in enumerate(model_names):
        if name not in params:
            raise _err(
                f"model prunable name {name!r} is not a parameter of the model",
                "fix the model's prunable_names",
            )
        have = list(params[name].shape)
        if name not in ticket.masks:
            other = ticket_names[i] if i < len(ticket_names) else None
            hint = (
                f"; the ticket has {other!r} {_shape_of(ticket.masks[other])} at that position"
                if other is not None
                else "; the ticket has no more prunable parameters"
            )
            raise _err(
                f"model parameter {name!r} {have} (prunable parameter {i + 1}) "
                f"is not in the ticket{hint}",
                fix,
            )
        want = list(ticket.masks[name].shape)
        if name not in heads and want != have:
            raise _err(
                f"parameter {name!r} has shape {have} in the model but {want} in the ticket", fix
            )
    model_set = set(model_names)
    for name in ticket_names:
        if name not in model_set:
            raise _err(
                f"ticket parameter {name!r} {_shape_of(ticket.masks[name])} "
                "is not a prunable parameter of the model",
                fix,
            )

    for name in model_heads:
        if name not in ticket.head_names:
            raise _err(f"model head parameter {name!r} is not a head parameter of the ticket", fix)
    for name in ticket.head_names:
        if name not in model_heads:
            raise _err(f"ticket head parameter {name!r} is not a head parameter of the model", fix)


def head_mismatch(ticket: Ticket, model: torch.nn.Module) -> str | None:
    """The first head parameter whose shape differs from the ticket's (None when the head fits)."""
    sd = model.state_dict()
    for name in _model_attr(model, "head_names"):
        t = _ticket_tensor(ticket, name)
        if t is None or name not in sd or t.shape != sd[name].shape:
            return name
    return None


def random_head_mask(
    shape: torch.Size | tuple[int, ...], density: float, generator: torch.Generator
) -> torch.Tensor:
    """A bool mask of ``shape`` with exactly ``round(density * numel)`` kept entries, seeded."""
    numel = 1
    for d in shape:
        numel *= int(d)
    k = min(numel, max(0, int(round(density * numel))))
    perm = torch.randperm(numel, generator=generator, device=generator.device)
    flat = torch.zeros(numel, dtype=torch.bool, device=generator.device)
    flat[perm[:k]] = True
    return flat.reshape(tuple(shape)).cpu()


def apply_ticket(
    ticket: Ticket,
    model: torch.nn.Module,
    *,
    head: str = "auto",
    generator: torch.Generator | None = None,
    reset_head: ResetHead | None = None,
) -> dict[str, torch.Tensor]:
    """Load ``ticket`` into ``model`` in place and return the model's masks (bool, per parameter).

    Non-head weights become ``weight * mask`` and every other state entry is loaded strictly.
    ``head``: ``keep`` loads the ticket's head (shapes must match); ``reinit`` re-initializes the
    model's head with ``reset_head(model, generator)`` and masks its weight at random with the
    ticket's head density; ``auto`` keeps the head when shapes match, otherwise re-initializes.
    """
    if head not in HEAD_MODES:
        raise _err(f"unknown head mode {head!r}", "use 'auto', 'reinit' or 'keep'")
    check_compatible(ticket, model)
    model_names = _model_attr(model, "prunable_names")
    heads = set(_model_attr(model, "head_names"))
    mismatch = head_mismatch(ticket, model)
    matches = mismatch is None
    if head == "keep" and mismatch is not None:
        model_value = model.state_dict().get(mismatch)
        raise _err(
            f"head parameter {mismatch!r} has shape {_shape_of(model_value)} in the model but "
            f"{_shape_of(_ticket_tensor(ticket, mismatch))} in the ticket (class counts differ)",
            "use head='auto' or head='reinit' to re-initialize the head",
        )
    reinit = head == "reinit" or (head == "auto" and not matches)

    sd = model.state_dict()
    for name, value in sd.items():
        if name in heads and reinit:
            continue
        t = _ticket_tensor(ticket, name)
        if t is None:
            raise _err(
                f"model state entry {name!r} {list(value.shape)} is missing from the ticket",
                "use a ticket found for this architecture",
            )
        if t.shape != value.shape:
            raise _err(
                f"state entry {name!r} has shape {list(value.shape)} in the model "
                f"but {list(t.shape)} in the ticket",
                "use a ticket found for this architecture and input size",
            )
    for name in list(ticket.weights) + list(ticket.state):
        if name not in sd and not (reinit and name in heads):
            raise _err(
                f"ticket entry {name!r} {_shape_of(_ticket_tensor(ticket, name))} "
                "does not exist in the model",
                "use a ticket found for this architecture",
            )

    masks: dict[str, torch.Tensor] = {}
    if reinit:
        if generator is None:
            raise _err(
                "re-initializing the head needs a generator",
                "pass generator=transfer_bench.seeding.generator(...)",
            )
        (reset_head or default_reset_head)(model, generator)
        layer_density = ticket.layer_density()
        params = dict(model.named_parameters())
        for name in model_names:
            if name in heads:
                density = layer_density.get(name, ticket.head_density)
                masks[name] = random_head_mask(params[name].shape, density, generator)
        sd = model.state_dict()

    new_sd: dict[str, torch.Tensor] = {}
    for name, value in sd.items():
        if reinit and name in heads:
            src = value.detach()
        else:
            src = _ticket_tensor(ticket, name)  # type: ignore[assignment]
        if name in ticket.masks or name in masks:
            mask = masks.get(name)
            if mask is None:
                mask = ticket.masks[name]
            mask = mask.to(src.device)
            masks[name] = mask
            src = torch.where(mask, src, torch.zeros((), dtype=src.dtype, device=src.device))
        new_sd[name] = src
    try:
        model.load_state_dict(new_sd, strict=True)
    except RuntimeError as e:
        raise _err(
            f"the ticket cannot be loaded into the model ({e})",
            "use a ticket found for this architecture",
        ) from None

    params = dict(model.named_parameters())
    return {name: masks[name].to(params[name].device) for name in model_names}
