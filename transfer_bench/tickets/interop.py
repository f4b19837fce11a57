"""Tickets to and from two foreign formats, bit-exactly: torch-prune state dicts and OpenLTH levels.

**torch-prune** (:func:`export_torch_prune`, :func:`import_torch_prune`): one ``torch.save`` file
holding a state dict as ``torch.nn.utils.prune.custom_from_mask`` leaves it. For every masked
parameter ``<module>.<param>`` it has ``<module>.<param>_orig`` (the ticket's rewound weights, pruned
entries 0) and ``<module>.<param>_mask`` (0/1 in the weight's dtype); every other entry is as in
``model.state_dict()``. To use it, build the same architecture and prune it first::

    for name in model.prunable_names:
        module, _, param = name.rpartition(".")
        prune.identity(model.get_submodule(module), param)  # or custom_from_mask(..., mask)
    model.load_state_dict(torch.load(path, weights_only=True))

torch-prune recomputes the effective ``<param> = <param>_orig * <param>_mask`` in a forward
pre-hook, i.e. on the next forward. On import a prunable parameter stored plain (never pruned) gets
an all-ones mask; a mask on a parameter transfer-bench does not prune (a bias) is an error.

**OpenLTH** (:func:`export_openlth`, :func:`import_openlth`): a level folder as OpenLTH's lottery
runner writes it (``lottery_<hash>/replicate_<r>/level_<L>/main``): ``mask.pth``, a ``torch.save``
of ``{name: 0/1 tensor}`` for every prunable parameter (int32, as ``Mask.save``), and
``model_ep0_it0.pth``, the state dict of the masked, rewound network (as ``PrunedModel.save`` at the
training start step); export also writes OpenLTH's ``sparsity_report.json``. Import takes the level
folder or its ``main`` subfolder and, unless told which checkpoint, the earliest
``model_ep<E>_it<I>.pth`` (the start weights; the folder also holds the trained ones). Names follow
OpenLTH's models (:func:`openlth_names`, read from facebookresearch/open_lth ``models/*.py``):

==================  =========================  ==============================================
transfer-bench      OpenLTH model              parameter names, ours -> OpenLTH
==================  =========================  ==============================================
``lenet_300_100``   ``mnist_lenet_300_100``    ``fc1`` -> ``fc_layers.0``, ``fc2`` ->
                                               ``fc_layers.1``, ``fc`` unchanged
``resnet20/56``     ``cifar_resnet_20/56[_W]`` unchanged (``conv``, ``bn``,
                                               ``blocks.<i>.{conv1,bn1,conv2,bn2,shortcut.<j>}``,
                                               ``fc``)
``vgg11/16/19``     ``cifar_vgg_11/16/19``     unchanged (``layers.<i>.{conv,bn}``, pools
                                               counted in ``i``; ``fc``)
``resnet18/50``     ``imagenet_resnet_18/50``  every name gets the prefix ``model.`` (OpenLTH
                                               wraps torchvision's ResNet); OpenLTH's ImageNet
                                               stem (7x7/2 conv) differs from ours, so
                                               ``conv1.weight`` only fits our own import
``conv2/4/6``,      none                       unchanged
``timm:<name>``
==================  =========================  ==============================================

OpenLTH's own nets also fix their input (784 features, 3 channels) and VGG's 512-wide head: only
the matching ``in_channels``/``image_size``/``width`` give files OpenLTH's models accept.

**Safety.** Every file is read with ``torch.load(path, map_location="cpu", weights_only=True)``
and must be a flat ``{name: tensor}`` dict; a pickle that would run code is refused, never run.
Every problem (missing or extra entries, shapes, non-0/1 masks) is a one-line ``TicketError``
naming the file, the reason and the fix.

**Imported meta.** ``model`` is our model's spec; unknown provenance is ``-1`` (``seed`` always;
``level`` unless the OpenLTH folder is ``level_<L>``; ``rewind`` unless the checkpoint is from
epoch 0); ``source`` records ``imported_from``, the file(s) and their sha256, plus ``meta_source``;
``search`` is ``{"method": "imported"}``, ``suite`` is ``{}``.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from transfer_bench.errors import TicketError
from transfer_bench.fileio import atomic_write_text, atomic_write_with, sha256_file
from transfer_bench.models import build_model
from transfer_bench.tickets.container import looks_like_torch_save
from transfer_bench.tickets.format import (
    _ST_DTYPES,
    Ticket,
    _err,
    _short,
    check_ticket,
    ticket_from_state,
)

OPENLTH_MASK = "mask.pth"
OPENLTH_CHECKPOINT = "model_ep0_it0.pth"
OPENLTH_REPORT = "sparsity_report.json"
_CHECKPOINT_RE = re.compile(r"model_ep(\d+)_it(\d+)\.pth")
_LEVEL_RE = re.compile(r"level_(\d+)")
_REPLICATE_RE = re.compile(r"replicate_(\d+)")

#: Module paths renamed from our models to OpenLTH's (``""`` is the root); see the module docstring.
_OPENLTH_RENAMES: dict[str, dict[str, str]] = {
    "lenet_300_100": {"fc1": "fc_layers.0", "fc2": "fc_layers.1"},
    "resnet18": {"": "model"},
    "resnet50": {"": "model"},
}

_FIX_RESAVE = "save only tensors, e.g. torch.save(model.state_dict(), path)"


def openlth_names(model_name: str) -> dict[str, str]:
    """Module paths of ``model_name`` renamed in OpenLTH's counterpart (ours -> theirs).

    A state-dict key ``<module path>.<leaf>`` is renamed by its longest listed module path (``""``
    is the root: every key gets the prefix); keys under no listed path are unchanged, so an empty
    mapping means identical names.
    """
    return dict(_OPENLTH_RENAMES.get(model_name, {}))


def _rename(key: str, renames: Mapping[str, str]) -> str:
    hits = [s for s in renames if s == "" or key == s or key.startswith(s + ".")]
    if not hits:
        return key
    src = max(hits, key=len)
    rest = key[len(src) :].lstrip(".") if src else key
    return ".".join(p for p in (renames[src], rest) if p)


# ---------------------------------------------------------------------------------------- reading


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A flat ``{name: tensor}`` dict from ``torch.load(weights_only=True)``; else a TicketError."""
    fix = "check the path"
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": noise for the user
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise _err(path, "no such file", fix) from None
    except IsADirectoryError:
        raise _err(path, "is a directory, not a torch.save file", fix) from None
    except pickle.UnpicklingError:
        if looks_like_torch_save(path):  # the safe unpickler met a global or opcode it refuses
            raise _err(
                path, "not a plain tensor dict; refusing to unpickle code", _FIX_RESAVE
            ) from None
        raise _err(
            path,
            "is not a torch.save file (it starts like neither a zip archive nor a pickle)",
            "check the path",
        ) from None
    except OSError as e:
        raise _err(path, f"cannot be read ({e.strerror})", "check the file's permissions") from None
    except Exception as e:  # torch raises assorted errors (EOFError, KeyError...) for garbage
        detail = " ".join(str(e).split())[:80]
        raise _err(
            path,
            f"is not a readable torch.save file ({type(e).__name__}{': ' * bool(detail)}{detail})",
            "it is truncated or corrupted; save it again with torch.save",
        ) from None
    if not isinstance(obj, dict):
        raise _err(path, f"holds a {type(obj).__name__}, not a dict of tensors", _FIX_RESAVE)
    out: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise _err(path, f"has a non-string key {_short(key)}", _FIX_RESAVE)
        if not isinstance(value, torch.Tensor):
            raise _err(
                path,
                f"entry {key!r} is a {type(value).__name__}, not a tensor",
                _FIX_RESAVE + " (not a checkpoint dict)",
            )
        if value.layout != torch.strided or value.dtype not in _ST_DTYPES:
            raise _err(
                path,
                f"entry {key!r} is a {value.layout} {value.dtype} tensor, which a ticket cannot hold",
                "save dense float, integer or bool tensors",
            )
        out[key] = value.detach()
    return out


def _build(
    model_name: str,
    num_classes: int,
    in_channels: int,
    image_size: int,
    options: Mapping[str, Any] | None,
) -> nn.Module:
    return build_model(
        model_name,
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        seed=0,
        options=dict(options or {}),
    )


def _fix_model(model: nn.Module) -> str:
    spec = model.model_spec
    return (
        f"pass the model the file was saved from (now {spec['name']!r}, "
        f"num_classes={spec['num_classes']}, in_channels={spec['in_channels']}, "
        f"image_size={spec['image_size']}, options={spec['options']})"
    )


def _check_entry(
    path: Path, key: str, value: torch.Tensor, ref: torch.Tensor, model: nn.Module
) -> None:
    if value.shape != ref.shape:
        raise _err(
            path,
            f"entry {key!r} has shape {list(value.shape)} but the model's has {list(ref.shape)}",
            _fix_model(model),
        )
    if value.is_floating_point() != ref.is_floating_point():
        raise _err(
            path,
            f"entry {key!r} has dtype {value.dtype} but the model's has {ref.dtype}",
            _fix_model(model),
        )


def _to_mask(path: Path, key: str, t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    if t.shape != shape:
        raise _err(
            path,
            f"mask {key!r} has shape {list(t.shape)} but its weight has {list(shape)}",
            "save each mask with its parameter's shape",
        )
    if t.dtype == torch.bool:
        return t.clone().contiguous()
    ok = (t == 0) | (t == 1)
    if not bool(ok.all()):
        bad = t[~ok].reshape(-1)[0].item()
        raise _err(
            path,
            f"mask {key!r} holds {_short(bad)}; masks must be 0 or 1",
            "save binary masks (1 = kept)",
        )
    return (t != 0).contiguous()


def _missing(path: Path, missing: list[str], what: str, model: nn.Module) -> TicketError:
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    return _err(
        path,
        f"lacks {what} {missing[0]!r}{more} of model {model.model_spec['name']!r}",
        _fix_model(model),
    )


def _make(
    path: Path,
    state: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    model: nn.Module,
    meta: dict[str, Any],
) -> Ticket:
    try:
        return ticket_from_state(state, masks, model.prunable_names, model.head_names, meta)
    except TicketError as e:  # e.g. NaN weights: name the file, not ticket_from_state
        raise TicketError(f"{path}: {str(e).removeprefix('ticket_from_state: ')}") from None


def _meta(
    model: nn.Module,
    source: dict[str, Any],
    meta_source: Mapping[str, Any] | None,
    *,
    level: int = -1,
    rewind: int = -1,
) -> dict[str, Any]:
    return {
        "model": model.model_spec,
        "level": level,
        "rewind": rewind,
        "seed": -1,
        "source": {**dict(meta_source or {}), **source},
        "search": {"method": "imported"},
        "suite": {},
    }


# ----------------------------------------------------------------------------------- torch-prune


def export_torch_prune(ticket: Ticket, path: str | os.PathLike[str]) -> Path:
    """Write ``ticket`` as the state dict of a ``torch.nn.utils.prune``-pruned model (atomically).

    Masked parameters become ``<name>_orig`` (the ticket's weights, unchanged) and ``<name>_mask``
    (0/1 in the weight's dtype); the state entries are copied as they are.
    """
    path = Path(path)
    check_ticket(ticket, path)
    sd: dict[str, torch.Tensor] = {}
    for name, w in ticket.weights.items():
        sd[name + "_orig"] = w.detach().cpu().contiguous().clone()
        sd[name + "_mask"] = ticket.masks[name].to(w.dtype)
    for name, v in ticket.state.items():
        sd[name] = v.detach().cpu().contiguous().clone()
    return atomic_write_with(path, lambda tmp: torch.save(sd, tmp))


def import_torch_prune(
    path: str | os.PathLike[str],
    model_name: str,
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    options: Mapping[str, Any] | None = None,
    meta_source: Mapping[str, Any] | None = None,
) -> Ticket:
    """Read a torch-prune state dict saved from our model ``model_name`` as a ticket.

    The model (built from the registry with ``options``) gives the names, shapes and head; the file
    must hold exactly its state dict, each prunable weight either as ``_orig`` + ``_mask`` or plain
    (all kept). ``meta_source`` adds provenance to ``meta["source"]``.
    """
    path = Path(path)
    model = _build(model_name, num_classes, in_channels, image_size, options)
    ref = model.state_dict()
    raw = _load_tensors(path)
    plain: dict[str, torch.Tensor] = {}
    orig: dict[str, torch.Tensor] = {}
    mask: dict[str, torch.Tensor] = {}
    for key, t in raw.items():
        if key in ref:
            plain[key] = t
        elif key.endswith("_orig") and key[:-5] in ref:
            orig[key[:-5]] = t
        elif key.endswith("_mask") and key[:-5] in ref:
            mask[key[:-5]] = t
        else:
            raise _err(
                path,
                f"entry {key!r} is neither an entry of model {model_name!r} nor the _orig/_mask "
                "of one",
                _fix_model(model),
            )
    missing = [k for k in ref if k not in plain and k not in orig and k not in mask]
    if missing:
        raise _missing(path, missing, "entry", model)
    prunable = set(model.prunable_names)
    state: dict[str, torch.Tensor] = {}
    masks: dict[str, torch.Tensor] = {}
    for name, want in ref.items():
        pruned = name in orig or name in mask
        if pruned:
            if name in plain:
                raise _err(
                    path,
                    f"holds both {name!r} and its pruned form {name + '_orig'!r}",
                    "save the state dict of the pruned model as torch-prune leaves it",
                )
            if name not in orig or name not in mask:
                have, lack = ("_mask", "_orig") if name in mask else ("_orig", "_mask")
                raise _err(
                    path,
                    f"has {name + have!r} but no {name + lack!r}",
                    "save the state dict of the pruned model as torch-prune leaves it",
                )
            if name not in prunable:
                raise _err(
                    path,
                    f"masks {name!r}, which transfer-bench does not prune (only conv and "
                    "linear weights)",
                    f"call prune.remove on {name!r} before saving",
                )
            value = orig[name]
        else:
            value = plain[name]
        _check_entry(path, name + "_orig" if pruned else name, value, want, model)
        state[name] = value
        if name in prunable:
            masks[name] = (
                _to_mask(path, name + "_mask", mask[name], value.shape)
                if pruned
                else torch.ones(value.shape, dtype=torch.bool)
            )
    source = {"imported_from": "torch-prune", "file": str(path), "sha256": sha256_file(path)}
    return _make(path, state, masks, model, _meta(model, source, meta_source))


# --------------------------------------------------------------------------------------- OpenLTH


def export_openlth(
    ticket: Ticket, out_dir: str | os.PathLike[str], *, checkpoint: str = OPENLTH_CHECKPOINT
) -> Path:
    """Write ``ticket`` as an OpenLTH level folder (``mask.pth``, ``checkpoint``, sparsity report).

    Names are mapped with :func:`openlth_names` of the ticket's model. For a ticket rewound to a
    later step, name ``checkpoint`` after OpenLTH's start step (``model_ep<E>_it<I>.pth``).
    """
    out = Path(out_dir)
    if not _CHECKPOINT_RE.fullmatch(checkpoint):
        raise _err(
            out / checkpoint, "is not an OpenLTH checkpoint name", "use model_ep<E>_it<I>.pth"
        )
    check_ticket(ticket, out)
    renames = openlth_names(str(ticket.meta["model"].get("name", "")))
    masks = {_rename(n, renames): m.to(torch.int32) for n, m in ticket.masks.items()}
    sd = {
        _rename(n, renames): v.detach().cpu().contiguous().clone()
        for n, v in (*ticket.weights.items(), *ticket.state.items())
    }
    atomic_write_with(out / OPENLTH_MASK, lambda tmp: torch.save(masks, tmp))
    atomic_write_with(out / checkpoint, lambda tmp: torch.save(sd, tmp))
    total = sum(m.numel() for m in ticket.masks.values())
    kept = sum(int(torch.count_nonzero(m)) for m in ticket.masks.values())
    report = {"total": float(total), "unpruned": float(kept)}
    atomic_write_text(out / OPENLTH_REPORT, json.dumps(report, indent=4))
    return out


def _level_folder(level_dir: Path) -> Path:
    if not level_dir.is_dir():
        raise _err(
            level_dir,
            "no such folder" if not level_dir.exists() else "is not a folder",
            "pass an OpenLTH level folder (.../level_<L>/main)",
        )
    if not (level_dir / OPENLTH_MASK).exists() and (level_dir / "main" / OPENLTH_MASK).exists():
        return level_dir / "main"
    if not (level_dir / OPENLTH_MASK).exists():
        raise _err(
            level_dir,
            f"has no {OPENLTH_MASK}, so it is not an OpenLTH level folder",
            "pass an OpenLTH level folder (.../level_<L>/main)",
        )
    return level_dir


def _pick_checkpoint(folder: Path, checkpoint: str | None) -> tuple[Path, int, int]:
    if checkpoint is not None:
        m = _CHECKPOINT_RE.fullmatch(checkpoint)
        if m is None:
            raise _err(
                folder / checkpoint,
                "is not an OpenLTH checkpoint name",
                "pass a model_ep<E>_it<I>.pth file of the level folder",
            )
        return folder / checkpoint, int(m[1]), int(m[2])
    found = sorted(
        (int(m[1]), int(m[2]), p.name)
        for p in folder.iterdir()
        if (m := _CHECKPOINT_RE.fullmatch(p.name))
    )
    if not found:
        raise _err(
            folder,
            "has no model_ep<E>_it<I>.pth checkpoint",
            "OpenLTH writes it when the level starts training; run that level first",
        )
    ep, it, name = found[0]
    return folder / name, ep, it


def openlth_files(
    level_dir: str | os.PathLike[str], checkpoint: str | None = None
) -> tuple[Path, Path, int]:
    """``(mask.pth, checkpoint, level)`` of an OpenLTH level folder (``level_<L>`` or its
    ``main``), as :func:`import_openlth` reads them; ``level`` is -1 unless the folder is named
    ``level_<L>``."""
    folder = _level_folder(Path(level_dir))
    ckpt, _, _ = _pick_checkpoint(folder, checkpoint)
    level_folder = folder.parent if folder.name == "main" else folder
    return folder / OPENLTH_MASK, ckpt, _folder_number(level_folder, _LEVEL_RE)


def stored_classes(
    path: str | os.PathLike[str],
    source_format: str,
    model_name: str,
    *,
    in_channels: int,
    image_size: int,
    options: Mapping[str, Any] | None = None,
) -> int:
    """The class count of the output layer stored in a torch-prune file or an OpenLTH level
    folder saved from ``model_name`` (the first dimension of its head weight), so that the file
    can be imported without being told how many classes its source had."""
    model = _build(model_name, 2, in_channels, image_size, options)
    params = dict(model.named_parameters())
    head = next((n for n in model.head_names if n in params and params[n].dim() >= 2), None)
    if head is None:
        raise _err(path, f"model {model_name!r} has no head weight", "use a registered model")
    if source_format == "openlth":
        _, file, _ = openlth_files(path)
        keys = [_rename(head, openlth_names(model_name))]
    else:
        file, keys = Path(path), [head, head + "_orig"]
    raw = _load_tensors(file)
    found = next((raw[k] for k in keys if k in raw), None)
    if found is None or found.dim() < 2:
        raise _err(
            file,
            f"holds no {keys[0]!r}, the output layer of model {model_name!r}, so it was not saved "
            f"from a {model_name}",
            f"use a ticket of the suite's model ({model_name})",
        )
    return int(found.shape[0])


def _folder_number(folder: Path, pattern: re.Pattern[str]) -> int:
    m = pattern.fullmatch(folder.name)
    return int(m[1]) if m else -1


def import_openlth(
    level_dir: str | os.PathLike[str],
    model_name: str,
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    options: Mapping[str, Any] | None = None,
    checkpoint: str | None = None,
    meta_source: Mapping[str, Any] | None = None,
) -> Ticket:
    """Read an OpenLTH level folder (``level_<L>`` or its ``main``) as a ticket of ``model_name``.

    Uses ``mask.pth`` and ``checkpoint`` (default: the earliest ``model_ep<E>_it<I>.pth``, the
    rewound start weights); names are mapped back with :func:`openlth_names`.
    """
    folder = _level_folder(Path(level_dir))
    ckpt, ep, it = _pick_checkpoint(folder, checkpoint)
    model = _build(model_name, num_classes, in_channels, image_size, options)
    ref = model.state_dict()
    renames = openlth_names(model_name)
    theirs = {k: _rename(k, renames) for k in ref}

    mask_path = folder / OPENLTH_MASK
    raw_masks = _load_tensors(mask_path)
    raw = _load_tensors(ckpt)
    for where, found, expected, what in (
        (ckpt, raw, [theirs[k] for k in ref], "entry"),
        (mask_path, raw_masks, [theirs[k] for k in model.prunable_names], "mask"),
    ):
        extra = [k for k in found if k not in expected]
        if extra:
            raise _err(
                where,
                f"{what} {extra[0]!r} does not belong to OpenLTH's counterpart of {model_name!r}",
                _fix_model(model),
            )
        missing = [k for k in expected if k not in found]
        if missing:
            raise _missing(where, missing, what, model)
    state: dict[str, torch.Tensor] = {}
    for name, want in ref.items():
        _check_entry(ckpt, theirs[name], raw[theirs[name]], want, model)
        state[name] = raw[theirs[name]]
    masks = {
        name: _to_mask(mask_path, theirs[name], raw_masks[theirs[name]], state[name].shape)
        for name in model.prunable_names
    }
    level_folder = folder.parent if folder.name == "main" else folder
    level = _folder_number(level_folder, _LEVEL_RE)
    source: dict[str, Any] = {
        "imported_from": "openlth",
        "folder": str(folder),
        "file": ckpt.name,
        "step": {"ep": ep, "it": it},
        "sha256": {OPENLTH_MASK: sha256_file(mask_path), ckpt.name: sha256_file(ckpt)},
        "replicate": _folder_number(level_folder.parent, _REPLICATE_RE),
    }
    meta = _meta(model, source, meta_source, level=level, rewind=it if ep == 0 else -1)
    return _make(ckpt, state, masks, model, meta)
