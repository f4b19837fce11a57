"""Ticket interop: torch-prune state dicts and OpenLTH level folders, bit-exact both ways."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from torch.nn.utils import prune

from transfer_bench.errors import TicketError
from transfer_bench.models import build_model
from transfer_bench.tickets import Ticket, apply_ticket, load_ticket, save_ticket, ticket_from_state
from transfer_bench.tickets.interop import (
    export_openlth,
    export_torch_prune,
    import_openlth,
    import_torch_prune,
    openlth_names,
)

#: name -> (build kwargs); small enough that every case builds in milliseconds.
MODELS = {
    "lenet_300_100": {"in_channels": 1, "image_size": 8, "options": {}},
    "resnet20": {"in_channels": 3, "image_size": 8, "options": {"width": 4}},
    "vgg11": {"in_channels": 3, "image_size": 16, "options": {"width": 8}},
    "resnet18": {"in_channels": 3, "image_size": 8, "options": {"width": 4}},
}


def make_ticket(name: str, num_classes: int = 10, density: float = 0.3) -> Ticket:
    kw = MODELS[name]
    model = build_model(name, num_classes=num_classes, seed=5, **kw)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, kw["in_channels"], kw["image_size"], kw["image_size"]))  # BN stats
    g = torch.Generator().manual_seed(1)
    params = dict(model.named_parameters())
    masks = {n: torch.rand(params[n].shape, generator=g) < density for n in model.prunable_names}
    sd = model.state_dict()
    first = model.prunable_names[0]
    masks[first].view(-1)[0] = True
    sd[first].view(-1)[0] = -0.0  # a kept negative zero must survive as such
    meta = {
        "model": model.model_spec,
        "level": 2,
        "rewind": 0,
        "seed": 3,
        "source": {"dataset": "unit"},
        "search": {"method": "imp"},
        "suite": {"name": "unit"},
    }
    return ticket_from_state(sd, masks, model.prunable_names, model.head_names, meta)


def import_kw(name: str, num_classes: int = 10) -> dict:
    return {"num_classes": num_classes, **MODELS[name]}


def assert_bit_equal(
    a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], ordered: bool = True
) -> None:
    assert list(a) == list(b) if ordered else set(a) == set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert torch.equal(
            a[k].reshape(-1).view(torch.uint8), b[k].reshape(-1).view(torch.uint8)
        ), k


def assert_same_ticket(a: Ticket, b: Ticket, ordered: bool = True) -> None:
    assert_bit_equal(a.masks, b.masks)
    assert_bit_equal(a.weights, b.weights)
    assert_bit_equal(a.state, b.state, ordered)  # a .ticket file keeps state sorted by name
    assert a.head_names == b.head_names
    assert a.meta["model"] == b.meta["model"]


def assert_one_line(e: pytest.ExceptionInfo[TicketError], *parts: str) -> None:
    msg = str(e.value)
    assert "\n" not in msg and ";" in msg, msg
    for part in parts:
        assert part in msg, msg


# ----------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", list(MODELS))
def test_torch_prune_round_trip(name: str, tmp_path: Path) -> None:
    t = make_ticket(name)
    path = export_torch_prune(t, tmp_path / "pruned.pt")
    sd = torch.load(path, weights_only=True)
    for n in t.masks:
        assert n not in sd and sd[n + "_mask"].dtype == t.weights[n].dtype
    back = import_torch_prune(path, name, **import_kw(name), meta_source={"dataset": "x"})
    assert_same_ticket(t, back)
    src = back.meta["source"]
    assert src["imported_from"] == "torch-prune" and src["file"] == str(path)
    assert src["dataset"] == "x" and len(src["sha256"]) == 64
    assert back.meta["level"] == -1 and back.meta["seed"] == -1
    assert_same_ticket(t, load_ticket(save_ticket(back, tmp_path / "back.ticket")), False)


@pytest.mark.parametrize("name", list(MODELS))
def test_openlth_round_trip(name: str, tmp_path: Path) -> None:
    t = make_ticket(name)
    level = tmp_path / "lottery_abc" / "replicate_2" / "level_3"
    out = export_openlth(t, level / "main")
    assert sorted(p.name for p in out.iterdir()) == [
        "mask.pth",
        "model_ep0_it0.pth",
        "sparsity_report.json",
    ]
    masks = torch.load(out / "mask.pth", weights_only=True)
    assert {m.dtype for m in masks.values()} == {torch.int32}  # as OpenLTH's Mask.save
    for folder in (out, level):  # the level folder or its main subfolder
        back = import_openlth(folder, name, **import_kw(name))
        assert_same_ticket(t, back)
        assert back.meta["level"] == 3 and back.meta["rewind"] == 0
        assert back.meta["source"]["replicate"] == 2
        assert back.meta["source"]["imported_from"] == "openlth"
    assert_same_ticket(t, load_ticket(save_ticket(back, tmp_path / "back.ticket")), False)


def test_openlth_names_match_openlth_models(tmp_path: Path) -> None:
    # Key lists of OpenLTH's mnist_lenet_300_100 and of torchvision-based imagenet_resnet_18
    # (models/mnist_lenet.py, models/imagenet_resnet.py in facebookresearch/open_lth).
    assert openlth_names("lenet_300_100") == {"fc1": "fc_layers.0", "fc2": "fc_layers.1"}
    assert openlth_names("resnet20") == openlth_names("vgg16") == openlth_names("conv2") == {}
    export_openlth(make_ticket("lenet_300_100"), tmp_path / "lenet")
    sd = torch.load(tmp_path / "lenet" / "model_ep0_it0.pth", weights_only=True)
    assert list(sd) == [
        "fc_layers.0.weight",
        "fc_layers.1.weight",
        "fc.weight",
        "fc_layers.0.bias",
        "fc_layers.1.bias",
        "fc.bias",
    ]
    masks = torch.load(tmp_path / "lenet" / "mask.pth", weights_only=True)
    assert list(masks) == ["fc_layers.0.weight", "fc_layers.1.weight", "fc.weight"]
    export_openlth(make_ticket("resnet18"), tmp_path / "r18")
    masks = torch.load(tmp_path / "r18" / "mask.pth", weights_only=True)
    assert "model.layer2.0.downsample.0.weight" in masks and "model.fc.weight" in masks
    export_openlth(make_ticket("resnet20"), tmp_path / "r20")
    masks = torch.load(tmp_path / "r20" / "mask.pth", weights_only=True)
    assert "blocks.3.shortcut.0.weight" in masks and "conv.weight" in masks


def test_openlth_picks_earliest_checkpoint(tmp_path: Path) -> None:
    t = make_ticket("lenet_300_100")
    out = export_openlth(t, tmp_path / "level_1" / "main", checkpoint="model_ep0_it5.pth")
    trained = {k: v + 1 for k, v in torch.load(out / "model_ep0_it5.pth").items()}
    torch.save(trained, out / "model_ep40_it0.pth")  # the end-of-training weights
    back = import_openlth(out, "lenet_300_100", **import_kw("lenet_300_100"))
    assert_same_ticket(t, back)
    assert back.meta["rewind"] == 5 and back.meta["source"]["step"] == {"ep": 0, "it": 5}
    late = import_openlth(
        out, "lenet_300_100", checkpoint="model_ep40_it0.pth", **import_kw("lenet_300_100")
    )
    assert late.meta["rewind"] == -1
    assert torch.equal(
        late.weights["fc.weight"], torch.where(t.masks["fc.weight"], trained["fc.weight"], 0.0)
    )


# ------------------------------------------------------------------- loading into a pruned model


@pytest.mark.parametrize("how", ["custom_from_mask", "identity"])
def test_torch_prune_file_loads_into_pruned_model(how: str, tmp_path: Path) -> None:
    t = make_ticket("lenet_300_100")
    path = export_torch_prune(t, tmp_path / "pruned.pt")
    model = build_model("lenet_300_100", num_classes=10, in_channels=1, image_size=8, seed=9)
    for name in model.prunable_names:
        module, _, param = name.rpartition(".")
        if how == "identity":
            prune.identity(model.get_submodule(module), param)
        else:
            prune.custom_from_mask(model.get_submodule(module), param, t.masks[name])
    model.load_state_dict(torch.load(path, weights_only=True))
    x = torch.randn(3, 1, 8, 8)
    out = model(x)  # torch-prune recomputes weight = weight_orig * weight_mask here
    for name in model.prunable_names:
        module, _, param = name.rpartition(".")
        w = getattr(model.get_submodule(module), param)
        expected = t.weights[name] * t.masks[name]
        assert torch.equal(w.view(-1).view(torch.int32), expected.view(-1).view(torch.int32))
    ref = build_model("lenet_300_100", num_classes=10, in_channels=1, image_size=8, seed=9)
    apply_ticket(t, ref, head="keep")
    assert torch.equal(out, ref(x))


def test_torch_prune_unpruned_parameter_is_dense(tmp_path: Path) -> None:
    model = build_model("lenet_300_100", num_classes=10, in_channels=1, image_size=8, seed=1)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        prune.random_unstructured(model.fc1, "weight", amount=0.5)
    torch.save(model.state_dict(), tmp_path / "p.pt")
    t = import_torch_prune(tmp_path / "p.pt", "lenet_300_100", **import_kw("lenet_300_100"))
    assert t.layer_density()["fc1.weight"] == 0.5
    assert bool(t.masks["fc.weight"].all()) and bool(t.masks["fc2.weight"].all())
    assert torch.equal(t.weights["fc1.weight"], model.fc1.weight_orig * model.fc1.weight_mask)


# ---------------------------------------------------------------------------- hostile and broken


def _pwn(marker: str) -> dict:
    Path(marker).write_text("code ran")
    return {}


class Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (_pwn, (self.marker,))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_code_pickles_are_refused_and_not_run(writer: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pt"
    payload = {"fc.weight": Evil(marker)}
    if writer == "torch.save":
        torch.save(payload, evil)
    else:
        evil.write_bytes(pickle.dumps(payload))
    with pytest.raises(TicketError) as e:
        import_torch_prune(evil, "lenet_300_100", **import_kw("lenet_300_100"))
    assert_one_line(e, str(evil), "not a plain tensor dict; refusing to unpickle code")
    level = tmp_path / "level_0"
    level.mkdir()
    (level / "mask.pth").write_bytes(evil.read_bytes())
    export = make_ticket("lenet_300_100")
    export_openlth(export, tmp_path / "ok")
    os.replace(tmp_path / "ok" / "model_ep0_it0.pth", level / "model_ep0_it0.pth")
    with pytest.raises(TicketError) as e:
        import_openlth(level, "lenet_300_100", **import_kw("lenet_300_100"))
    assert_one_line(e, "mask.pth", "refusing to unpickle code")
    assert not marker.exists()
    if writer == "torch.save":  # the payload is live: an unsafe load runs it
        torch.load(evil, weights_only=False)
        assert marker.read_text() == "code ran"


def _edit(path: Path, edit) -> Path:
    sd = torch.load(path, weights_only=True)
    edit(sd)
    torch.save(sd, path)
    return path


@pytest.fixture(scope="module")
def lenet_ticket() -> Ticket:
    return make_ticket("lenet_300_100")


@pytest.mark.parametrize(
    ("edit", "parts"),
    [
        (lambda sd: sd.pop("fc2.bias"), ["lacks entry 'fc2.bias'"]),
        (lambda sd: sd.update(extra=torch.zeros(1)), ["entry 'extra'"]),
        (lambda sd: sd.pop("fc1.weight_orig"), ["'fc1.weight_mask' but no 'fc1.weight_orig'"]),
        (lambda sd: sd["fc1.weight_mask"].view(-1).__setitem__(3, 0.5), ["holds 0.5", "0 or 1"]),
        (lambda sd: sd.update({"fc1.weight_mask": torch.ones(2, 2)}), ["shape [2, 2]"]),
        (lambda sd: sd.update({"fc2.bias": torch.zeros(7)}), ["'fc2.bias' has shape [7]"]),
        (
            lambda sd: sd.update(
                {"fc.bias_orig": sd.pop("fc.bias"), "fc.bias_mask": torch.ones(10)}
            ),
            ["does not prune"],
        ),
        (lambda sd: sd.update({"fc2.bias": torch.zeros(100, dtype=torch.int64)}), ["dtype"]),
        (lambda sd: sd.update({"fc2.bias": {"nested": torch.zeros(1)}}), ["not a tensor"]),
        (lambda sd: sd["fc1.weight_orig"].view(-1).__setitem__(0, float("nan")), ["NaN"]),
    ],
)
def test_torch_prune_bad_files(edit, parts, lenet_ticket: Ticket, tmp_path: Path) -> None:
    path = _edit(export_torch_prune(lenet_ticket, tmp_path / "p.pt"), edit)
    with pytest.raises(TicketError) as e:
        import_torch_prune(path, "lenet_300_100", **import_kw("lenet_300_100"))
    assert_one_line(e, str(path), *parts)


def test_unreadable_files(lenet_ticket: Ticket, tmp_path: Path) -> None:
    kw = import_kw("lenet_300_100")
    cases = {
        "missing.pt": None,
        "empty.pt": b"",
        "junk.pt": b"not a torch file at all",
        "truncated.pt": export_torch_prune(lenet_ticket, tmp_path / "t.pt").read_bytes()[:300],
    }
    for name, data in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        with pytest.raises(TicketError) as e:
            import_torch_prune(tmp_path / name, "lenet_300_100", **kw)
        assert_one_line(e, name)
        assert "refusing to unpickle" not in str(e.value)
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(TicketError) as e:
        import_torch_prune(tmp_path / "list.pt", "lenet_300_100", **kw)
    assert_one_line(e, "holds a list")
    path = export_torch_prune(lenet_ticket, tmp_path / "p.pt")
    with pytest.raises(TicketError) as e:  # wrong class count: the head does not fit
        import_torch_prune(path, "lenet_300_100", **import_kw("lenet_300_100", num_classes=5))
    assert_one_line(e, "'fc.weight_orig' has shape [10, 100]", "num_classes=5")


def test_openlth_bad_folders(lenet_ticket: Ticket, tmp_path: Path) -> None:
    kw = import_kw("lenet_300_100")
    with pytest.raises(TicketError) as e:
        import_openlth(tmp_path / "nowhere", "lenet_300_100", **kw)
    assert_one_line(e, "no such folder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TicketError) as e:
        import_openlth(tmp_path / "empty", "lenet_300_100", **kw)
    assert_one_line(e, "has no mask.pth")
    out = export_openlth(lenet_ticket, tmp_path / "level_1")
    with pytest.raises(TicketError) as e:  # our names where OpenLTH's are expected
        import_openlth(out, "conv2", **kw)
    assert_one_line(e, "model_ep0_it0.pth", "does not belong")
    _edit(out / "mask.pth", lambda m: m.update({"fc.weight": m["fc.weight"] * 2}))
    with pytest.raises(TicketError) as e:
        import_openlth(out, "lenet_300_100", **kw)
    assert_one_line(e, "mask.pth", "mask 'fc.weight' holds 2", "0 or 1")
    _edit(out / "mask.pth", lambda m: m.pop("fc.weight"))
    with pytest.raises(TicketError) as e:
        import_openlth(out, "lenet_300_100", **kw)
    assert_one_line(e, "mask.pth", "lacks mask 'fc.weight'")
    (out / "model_ep0_it0.pth").unlink()
    with pytest.raises(TicketError) as e:
        import_openlth(out, "lenet_300_100", **kw)
    assert_one_line(e, "has no model_ep<E>_it<I>.pth")
