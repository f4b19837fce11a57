"""Ticket files: bit-exact round trip, rejection of tampered/garbage files, applying to models."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from transfer_bench.errors import TicketError
from transfer_bench.tickets import (
    Ticket,
    apply_ticket,
    describe,
    load_ticket,
    save_ticket,
    ticket_from_state,
    verify_ticket,
)
from transfer_bench.tickets import format as fmt


class Toy(nn.Module):
    """conv(27 weights) + BN + fc1 + head fc; weight sizes are not multiples of 8."""

    def __init__(
        self,
        num_classes: int = 10,
        hidden: int = 13,
        seed: int = 0,
        conv_name: str = "conv",
        conv_out: int = 3,
    ) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.add_module(conv_name, nn.Conv2d(1, conv_out, 3))
            self.bn = nn.BatchNorm2d(conv_out)
            self.fc1 = nn.Linear(conv_out * 36, hidden)
            self.fc = nn.Linear(hidden, num_classes)
        self.conv_name = conv_name
        self.prunable_names = (f"{conv_name}.weight", "fc1.weight", "fc.weight")
        self.head_names = ("fc.weight", "fc.bias")
        self.model_spec = {
            "name": "toy",
            "num_classes": num_classes,
            "in_channels": 1,
            "image_size": 8,
            "options": {"hidden": hidden},
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(getattr(self, self.conv_name)(x)))
        return self.fc(torch.relu(self.fc1(x.flatten(1))))


def toy_reset_head(model: nn.Module, generator: torch.Generator) -> None:
    with torch.no_grad():
        w = model.fc.weight
        w.copy_(torch.rand(w.shape, generator=generator) * 0.2 - 0.1)
        model.fc.bias.zero_()


def random_masks(model: nn.Module, density: float, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    return {n: torch.rand(params[n].shape, generator=g) < density for n in model.prunable_names}


META = {
    "level": 3,
    "rewind": 0,
    "seed": 7,
    "source": {
        "name": "digits",
        "spec": {"source": "builtin:digits"},
        "num_classes": 10,
        "input": {"size": 8, "channels": 1},
    },
    "search": {"method": "imp", "rate": 0.2, "head_rate": 0.1, "levels": 5},
    "suite": {"name": "unit", "hash": "abc123"},
}


def make_ticket(model: Toy, density: float = 0.1) -> Ticket:
    model.train()
    model(torch.randn(4, 1, 8, 8))  # non-trivial BN running stats and num_batches_tracked
    meta = {**META, "model": model.model_spec}
    return ticket_from_state(
        model.state_dict(),
        random_masks(model, density),
        model.prunable_names,
        model.head_names,
        meta,
    )


@pytest.fixture
def ticket() -> Ticket:
    return make_ticket(Toy())


@pytest.fixture
def saved(ticket: Ticket, tmp_path: Path) -> Path:
    return save_ticket(ticket, tmp_path / "t.ticket")


@pytest.fixture
def saved_v1(ticket: Ticket, tmp_path: Path) -> Path:
    """The same ticket in format version 1 (dense weights, digest over the tensors only)."""
    path = tmp_path / "v1.ticket"
    path.write_bytes(fmt._encode(fmt._tensors(ticket), ticket.meta, version=1))
    return path


def rewrite_metadata(path: Path, edit) -> None:
    """Change the safetensors ``__metadata__`` of ``path`` in place (payload untouched)."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    edit(header["__metadata__"])
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    path.write_bytes(len(hb).to_bytes(8, "little") + hb + raw[8 + n :])


def assert_bit_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert list(a) == list(b) or set(a) == set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert torch.equal(
            a[k].reshape(-1).view(torch.uint8), b[k].reshape(-1).view(torch.uint8)
        ), k


# ------------------------------------------------------------------------------- format round trip


def test_round_trip_bit_exact(ticket: Ticket, saved: Path) -> None:
    back = load_ticket(saved)
    assert list(back.masks) == list(ticket.masks)
    assert any(m.numel() % 8 for m in ticket.masks.values())
    assert_bit_equal(back.masks, ticket.masks)
    assert_bit_equal(back.weights, ticket.weights)
    assert_bit_equal(back.state, ticket.state)
    assert back.state["bn.num_batches_tracked"].dtype == torch.int64
    assert back.meta == ticket.meta
    assert back.density == ticket.density and back.head_density == ticket.head_density
    assert back.layer_density() == ticket.layer_density()
    for k in ("model", "param_shapes", "head_names", "mask_lengths", "created_by", "layer_density"):
        assert k in back.meta
    assert back.meta["mask_lengths"]["conv.weight"] == 27


def test_ticket_contents(ticket: Ticket) -> None:
    for name, w in ticket.weights.items():
        assert torch.all(w[~ticket.masks[name]] == 0)
    assert "fc.bias" in ticket.state and "fc.weight" not in ticket.state
    rows = describe(ticket)
    assert [r["layer"] for r in rows] == ["conv.weight", "fc1.weight", "fc.weight"]
    assert rows[-1]["is_head"] and not rows[0]["is_head"]
    assert sum(r["kept"] for r in rows) / sum(r["total"] for r in rows) == pytest.approx(
        ticket.density
    )


def test_file_smaller_than_torch_save(tmp_path: Path) -> None:
    model = Toy(hidden=256)
    t = make_ticket(model, density=0.1)
    path = save_ticket(t, tmp_path / "big.ticket")
    dense = tmp_path / "dense.pt"
    torch.save({"state_dict": model.state_dict(), "masks": dict(t.masks)}, dense)
    assert path.stat().st_size < dense.stat().st_size


def test_save_is_atomic_and_leaves_no_temp(ticket: Ticket, tmp_path: Path) -> None:
    save_ticket(ticket, tmp_path / "a.ticket")
    save_ticket(ticket, tmp_path / "a.ticket")
    assert [p.name for p in tmp_path.iterdir()] == ["a.ticket"]


# ------------------------------------------------------------------------------------ rejection


def test_tampered_payload_fails_sha(saved: Path) -> None:
    raw = bytearray(saved.read_bytes())
    raw[-3] ^= 0x10
    saved.write_bytes(bytes(raw))
    with pytest.raises(TicketError, match="sha256") as e:
        verify_ticket(saved)
    assert str(saved) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("edit", "expect"),
    [
        (lambda m: m.update(format_version="3"), "newer"),
        (lambda m: m.update(format="something-else"), "format"),
        (lambda m: m.pop("format"), "format"),
        (lambda m: m.update(meta="{not json"), "not valid JSON"),
        (lambda m: m.pop("payload_sha256"), "payload_sha256"),
        (lambda m: m.update(meta=json.dumps({**json.loads(m["meta"]), "density": 0.9})), "density"),
        (
            lambda m: m.update(
                meta=json.dumps({k: v for k, v in json.loads(m["meta"]).items() if k != "seed"})
            ),
            "missing",
        ),
        (
            lambda m: m.update(meta=json.dumps({**json.loads(m["meta"]), "mask_lengths": {}})),
            "mask_lengths",
        ),
        (
            lambda m: m.update(meta=json.dumps({**json.loads(m["meta"]), "param_shapes": 5})),
            "param_shapes",
        ),
    ],
)
def test_edited_metadata_rejected(saved_v1: Path, edit, expect: str) -> None:
    saved = saved_v1  # version 1 checks what it can; version 2 rejects any edit (below)
    rewrite_metadata(saved, edit)
    with pytest.raises(TicketError, match=expect) as e:
        load_ticket(saved)
    assert str(saved) in str(e.value) and "\n" not in str(e.value)


def test_garbage_files_rejected(saved: Path, tmp_path: Path, ticket: Ticket) -> None:
    cases = {}
    raw = saved.read_bytes()
    cases["truncated.ticket"] = raw[: len(raw) // 2]
    cases["short.ticket"] = raw[:5]
    cases["payload_cut.ticket"] = raw[:-4]
    cases["random.ticket"] = (
        torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0))
        .to(torch.uint8)
        .numpy()
        .tobytes()
    )
    cases["huge.ticket"] = (2**62).to_bytes(8, "little") + b"{}" * 10
    cases["pickle.ticket"] = pickle.dumps({"masks": [1, 2, 3]})
    cases["empty.ticket"] = b""
    cases["notjson.ticket"] = (16).to_bytes(8, "little") + b"\xff" * 16
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    torch.save(dict(ticket.weights), tmp_path / "torchsave.ticket")
    for name in [*cases, "torchsave.ticket", "missing.ticket"]:
        with pytest.raises(TicketError) as e:
            load_ticket(tmp_path / name)
        msg = str(e.value)
        assert name in msg and "\n" not in msg, msg
    with pytest.raises(TicketError, match="limit"):
        load_ticket(tmp_path / "huge.ticket")
    with pytest.raises(TicketError, match="pickle"):
        load_ticket(tmp_path / "torchsave.ticket")


def test_bad_payload_contents_rejected(ticket: Ticket, tmp_path: Path) -> None:
    """Content checks run after the digest, so write files with a valid digest over bad data."""

    def write(t: Ticket, name: str) -> Path:
        path = tmp_path / name
        # version 1 (dense weights can hold bad pruned values); bypasses save_ticket's checks
        path.write_bytes(fmt._encode(fmt._tensors(t), t.meta, version=1))
        return path

    w = {k: v.clone() for k, v in ticket.weights.items()}
    w["fc1.weight"][0, 0] = float("nan")
    with pytest.raises(TicketError, match="NaN"):
        load_ticket(write(Ticket(ticket.masks, w, ticket.state, ticket.meta), "nan.ticket"))

    w = {k: v.clone() for k, v in ticket.weights.items()}
    w["fc1.weight"][~ticket.masks["fc1.weight"]] = 1.0
    with pytest.raises(TicketError, match="pruned"):
        load_ticket(write(Ticket(ticket.masks, w, ticket.state, ticket.meta), "pruned.ticket"))

    w = {k: v.clone() for k, v in ticket.weights.items()}
    w["conv.weight"] = w["conv.weight"].reshape(3, 9)
    with pytest.raises(TicketError, match="conv.weight"):
        load_ticket(write(Ticket(ticket.masks, w, ticket.state, ticket.meta), "shape.ticket"))

    # non-zero pad bits: patch the packed mask tensor of conv.weight (27 entries -> 5 pad bits)
    tensors = fmt._tensors(ticket)
    tensors["mask/conv.weight"][-1] |= 1
    header, data = fmt._split_blob(fmt._st_save(tensors))
    metadata = {
        "format": fmt.FORMAT_NAME,
        "format_version": "1",
        "meta": json.dumps(ticket.meta),
        "payload_sha256": fmt._payload_sha256(header, data),
    }
    path = tmp_path / "pad.ticket"
    path.write_bytes(fmt._st_save(tensors, metadata=metadata))
    with pytest.raises(TicketError, match="pad bits"):
        load_ticket(path)

    with pytest.raises(TicketError, match="NaN"):
        save_ticket(
            Ticket(
                ticket.masks,
                w | {"conv.weight": torch.full((3, 1, 3, 3), float("inf"))},
                ticket.state,
                ticket.meta,
            ),
            tmp_path / "x.ticket",
        )


# ----------------------------------------------------------------------------------------- apply


def test_apply_same_head_loads_exactly(ticket: Ticket) -> None:
    model = Toy(seed=99)
    masks = apply_ticket(ticket, model, head="auto")
    assert list(masks) == list(model.prunable_names)
    sd = model.state_dict()
    for name in model.prunable_names:
        assert masks[name].dtype == torch.bool
        assert torch.equal(masks[name], ticket.masks[name])
        assert torch.equal(sd[name], ticket.weights[name])
        assert torch.all(sd[name][~masks[name]] == 0)
    for name, v in ticket.state.items():
        assert torch.equal(sd[name], v)


def test_apply_zeroes_pruned_weights(ticket: Ticket) -> None:
    t = Ticket(
        ticket.masks,
        {k: torch.ones_like(v) for k, v in ticket.weights.items()},
        ticket.state,
        ticket.meta,
    )
    model = Toy(seed=5)
    masks = apply_ticket(t, model, head="keep")
    params = dict(model.named_parameters())
    for name, m in masks.items():
        assert torch.equal(params[name].detach(), m.float())


def test_apply_to_100_class_model(ticket: Ticket) -> None:
    def run(seed: int) -> tuple[Toy, dict[str, torch.Tensor]]:
        model = Toy(num_classes=100, seed=3)
        g = torch.Generator().manual_seed(seed)
        return model, apply_ticket(
            ticket, model, head="auto", generator=g, reset_head=toy_reset_head
        )

    model, masks = run(0)
    sd = model.state_dict()
    for name in ("conv.weight", "fc1.weight"):
        assert torch.equal(sd[name], ticket.weights[name] * ticket.masks[name])
        assert torch.equal(masks[name], ticket.masks[name])
    for name in ("bn.running_mean", "bn.running_var", "bn.num_batches_tracked", "fc1.bias"):
        assert torch.equal(sd[name], ticket.state[name])
    head_mask = masks["fc.weight"]
    assert head_mask.shape == (100, 13)
    numel = head_mask.numel()
    assert abs(int(head_mask.sum()) - ticket.head_density * numel) <= 1
    assert torch.all(sd["fc.weight"][~head_mask] == 0)
    assert torch.count_nonzero(sd["fc.weight"]) > 0

    model2, masks2 = run(0)
    assert torch.equal(masks2["fc.weight"], head_mask)
    assert torch.equal(model2.state_dict()["fc.weight"], sd["fc.weight"])
    model3, masks3 = run(1)
    assert not torch.equal(masks3["fc.weight"], head_mask)


def test_apply_head_modes(ticket: Ticket) -> None:
    with pytest.raises(TicketError, match="head"):
        apply_ticket(ticket, Toy(num_classes=100), head="keep")
    with pytest.raises(TicketError, match="generator"):
        apply_ticket(ticket, Toy(num_classes=100), head="auto", reset_head=toy_reset_head)
    with pytest.raises(TicketError, match="head mode"):
        apply_ticket(ticket, Toy(), head="nope")
    model = Toy()
    masks = apply_ticket(
        ticket,
        model,
        head="reinit",
        generator=torch.Generator().manual_seed(0),
        reset_head=toy_reset_head,
    )
    assert not torch.equal(model.state_dict()["fc.weight"], ticket.weights["fc.weight"])
    assert abs(int(masks["fc.weight"].sum()) - ticket.head_density * 130) <= 1


def test_apply_names_first_mismatch(ticket: Ticket) -> None:
    with pytest.raises(TicketError, match="'conv1.weight'") as e:
        apply_ticket(ticket, Toy(conv_name="conv1"))
    assert "conv.weight" in str(e.value)
    with pytest.raises(TicketError, match=r"'conv\.weight'.*shape"):
        apply_ticket(
            ticket,
            Toy(conv_out=4),
            head="auto",
            generator=torch.Generator(),
            reset_head=toy_reset_head,
        )

    model = Toy()
    model.register_buffer("extra", torch.zeros(2))
    with pytest.raises(TicketError, match="'extra'"):
        apply_ticket(ticket, model)


# ------------------------------------------------------------------------------------ version 2


def test_v2_stores_kept_values_only_and_v1_still_loads(ticket: Ticket, saved: Path, saved_v1: Path):
    back, old = load_ticket(saved), load_ticket(saved_v1)
    for name in ticket.masks:
        assert torch.equal(back.masks[name], old.masks[name])
        assert torch.equal(back.weights[name], old.weights[name])
    assert saved.stat().st_size < saved_v1.stat().st_size
    kept = sum(int(m.sum()) for m in ticket.masks.values())
    from safetensors.torch import load_file

    stored = load_file(saved)
    assert sum(v.numel() for k, v in stored.items() if k.startswith("kept/")) == kept
    upgraded = fmt.upgrade_ticket(saved_v1, saved.parent / "up.ticket")
    assert upgraded.read_bytes() == saved.read_bytes()


def test_v2_any_provenance_edit_is_caught(saved: Path) -> None:
    def edit(m):
        meta = json.loads(m["meta"])
        meta["source"] = {**meta["source"], "name": "another-dataset"}
        m["meta"] = json.dumps(meta, sort_keys=True)

    raw = saved.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    edit(header["__metadata__"])
    hb = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()  # canonical form
    hb += b" " * (-len(hb) % 8)
    saved.write_bytes(len(hb).to_bytes(8, "little") + hb + raw[8 + n :])
    with pytest.raises(TicketError, match="sha256 mismatch"):
        load_ticket(saved)


def test_v2_every_byte_is_protected(saved: Path, tmp_path: Path) -> None:
    raw = saved.read_bytes()
    bad = tmp_path / "bad.ticket"
    for i in range(0, len(raw), 3):
        for flip in (0x01, 0x20):
            edited = bytearray(raw)
            edited[i] ^= flip
            bad.write_bytes(bytes(edited))
            with pytest.raises(TicketError):
                load_ticket(bad)
