"""Ticket files are untrusted input: a corpus of malformed files, fuzzing, apply mismatches and
byte-deterministic saving.

Every malformed file must be rejected by ``load_ticket`` with a one-line ``TicketError`` naming the
file, and by ``transfer-bench ticket verify`` with exit status 1 and no traceback. Files whose
problem is semantic (a dtype, a missing field...) are re-encoded with a correct payload digest via
the format module's own helpers, so that the check under test is the semantic one, not the hash.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load as st_load
from safetensors.torch import load_file as st_load_file
from torch import nn

from transfer_bench import cli
from transfer_bench import entry as entry_point
from transfer_bench.errors import TicketError
from transfer_bench.models import build_model
from transfer_bench.tickets import (
    MAX_HEADER_BYTES,
    Ticket,
    apply_ticket,
    load_ticket,
    save_ticket,
    ticket_bytes,
    ticket_from_state,
)
from transfer_bench.tickets import format as fmt

pytestmark = pytest.mark.reliability

REPO = Path(__file__).resolve().parents[1]

META = {
    "level": 2,
    "rewind": 0,
    "seed": 3,
    "source": {"name": "digits", "num_classes": 3},
    "search": {"method": "imp", "rate": 0.2},
    "suite": {"name": "corpus", "hash": "abc"},
}


class Tiny(nn.Module):
    """conv (18 weights: not a multiple of 8, so the packed mask has pad bits) + BN + fc head."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.conv = nn.Conv2d(1, 2, 3)
            self.bn = nn.BatchNorm2d(2)
            self.fc = nn.Linear(2 * 4 * 4, 3)
        self.prunable_names = ("conv.weight", "fc.weight")
        self.head_names = ("fc.weight", "fc.bias")
        self.model_spec = {
            "name": "tiny",
            "num_classes": 3,
            "in_channels": 1,
            "image_size": 6,
            "options": {},
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


def masks_for(model: nn.Module, density: float, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    return {n: torch.rand(params[n].shape, generator=g) < density for n in model.prunable_names}


def make_ticket(model: nn.Module, density: float = 0.5) -> Ticket:
    meta = {**META, "model": model.model_spec}
    return ticket_from_state(
        model.state_dict(),
        masks_for(model, density),
        model.prunable_names,
        model.head_names,
        meta,
    )


@functools.cache
def tiny_ticket() -> Ticket:
    model = Tiny()
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 1, 6, 6, generator=torch.Generator().manual_seed(0)))
    return make_ticket(model)


@functools.cache
def tiny_blob() -> bytes:
    return ticket_bytes(tiny_ticket())


def header_end(blob: bytes) -> int:
    return 8 + int.from_bytes(blob[:8], "little")


def encode(tensors: dict[str, torch.Tensor], meta_obj: Any, /, **metadata: str) -> bytes:
    """A version-1 ticket container with a correct payload digest over ``tensors`` (version 1
    checks each field on its own; version 2 rejects any edit by its digest); ``metadata``
    overrides the safetensors metadata block (format, format_version...)."""
    entries, data = fmt._layout(tensors)
    block = {
        "format": fmt.FORMAT_NAME,
        "format_version": "1",
        "meta": json.dumps(meta_obj),
        "payload_sha256": fmt._payload_sha256(entries, memoryview(data)),
        **metadata,
    }
    return fmt._container(entries, data, block)


def with_tensors(edit: Callable[[dict[str, torch.Tensor]], None]) -> Callable[[], bytes]:
    def build() -> bytes:
        tensors = {k: v.clone() for k, v in fmt._tensors(tiny_ticket()).items()}
        edit(tensors)
        return encode(tensors, tiny_ticket().meta)

    return build


def with_v2_tensors(edit: Callable[[dict[str, torch.Tensor]], None]) -> Callable[[], bytes]:
    """A version-2 file with a correct digest over edited tensors (the semantic check is tested)."""

    def build() -> bytes:
        tensors = {k: v.clone() for k, v in fmt._tensors_v2(tiny_ticket()).items()}
        edit(tensors)
        return fmt._encode(tensors, tiny_ticket().meta, version=2)

    return build


def v2_truncated_values() -> bytes:
    return tiny_blob()[:-10]


def with_meta(edit: Callable[[dict[str, Any]], Any], **metadata: str) -> Callable[[], bytes]:
    def build() -> bytes:
        meta = json.loads(json.dumps(tiny_ticket().meta))
        replaced = edit(meta)
        meta = meta if replaced is None else replaced
        return encode(fmt._tensors(tiny_ticket()), meta, **metadata)

    return build


def truncated(cut: Callable[[bytes], int]) -> Callable[[], bytes]:
    return lambda: tiny_blob()[: cut(tiny_blob())]


def header_bytes(text: bytes) -> Callable[[], bytes]:
    return lambda: len(text).to_bytes(8, "little") + text


def zip_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data.pkl", pickle.dumps({"masks": [1, 2, 3]}))
    return buf.getvalue()


def flip_data_byte() -> bytes:
    raw = bytearray(tiny_blob())
    raw[header_end(raw) + 5] ^= 0x01
    return bytes(raw)


def set_(tensors: dict[str, torch.Tensor], key: str, value: torch.Tensor) -> None:
    tensors[key] = value


def poke(key: str, value: float, kept: bool = True) -> Callable[[dict[str, torch.Tensor]], None]:
    """Put ``value`` into the first kept (or pruned) entry of weight tensor ``key``."""

    def edit(tensors: dict[str, torch.Tensor]) -> None:
        name = key.removeprefix(fmt.WEIGHT_PREFIX)
        mask = tiny_ticket().masks.get(name)
        flat = tensors[key].reshape(-1)
        idx = 0 if mask is None else int(torch.nonzero(mask.reshape(-1) == kept)[0])
        flat[idx] = value

    return edit


def pad_bit(tensors: dict[str, torch.Tensor]) -> None:
    tensors["mask/conv.weight"][-1] |= 1  # 18 entries in 3 bytes: the last 6 bits are padding


def drop(key: str) -> Callable[[dict[str, Any]], None]:
    def edit(meta: dict[str, Any]) -> None:
        del meta[key]

    return edit


def put(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda meta: meta.__setitem__(key, value)


# name -> (file bytes, expected reason substring)
CORPUS: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty": (lambda: b"", "too short"),
    "cut-at-1": (truncated(lambda b: 1), "too short"),
    "cut-at-7": (truncated(lambda b: 7), "too short"),
    "cut-at-8": (truncated(lambda b: 8), "is truncated"),
    "cut-in-header": (truncated(lambda b: header_end(b) // 2), "is truncated"),
    "cut-header-minus-1": (truncated(lambda b: header_end(b) - 1), "is truncated"),
    "cut-after-header": (truncated(header_end), "not a valid safetensors file"),
    "cut-mid-data": (
        truncated(lambda b: (header_end(b) + len(b)) // 2),
        "not a valid safetensors file",
    ),
    "cut-last-byte": (truncated(lambda b: len(b) - 1), "not a valid safetensors file"),
    "header-longer-than-file": (
        lambda: (len(tiny_blob())).to_bytes(8, "little") + tiny_blob()[8:],
        "is truncated",
    ),
    "huge-header": (
        lambda: (MAX_HEADER_BYTES + 1).to_bytes(8, "little") + b"{}" * 8,
        "limit",
    ),
    "max-u64-header": (lambda: b"\xff" * 8 + b"{}", "limit"),
    "invalid-json": (header_bytes(b'{"__metadata__": {'), "not valid JSON"),
    "invalid-utf8": (header_bytes(b'{"\xff\xfe": 1}  '), "not valid JSON"),
    "deeply-nested-json": (header_bytes(b"[" * 200_000), "not valid JSON"),
    "json-array": (header_bytes(b"[1, 2, 3]"), "not a JSON object"),
    "json-string": (header_bytes(b'"ticket"'), "not a JSON object"),
    "json-null": (header_bytes(b"null    "), "not a JSON object"),
    "no-metadata": (header_bytes(b"{}"), "no 'format' metadata"),
    "plain-safetensors": (
        lambda: fmt._container(*fmt._layout({"w": torch.ones(2)}), {"x": "y"}),
        "no 'format' metadata",
    ),
    "other-format": (with_meta(lambda m: None, format="other-tool"), "is not 'transfer-bench"),
    "future-version": (with_meta(lambda m: None, format_version="3"), "newer than"),
    "version-not-a-number": (with_meta(lambda m: None, format_version="one"), "not a version"),
    "version-too-long": (
        with_meta(lambda m: None, format_version="9" * 5000),
        "not a version number",
    ),
    "meta-not-json": (with_meta(lambda m: None, meta="{oops"), "not valid JSON"),
    "meta-deeply-nested": (with_meta(lambda m: None, meta="[" * 200_000), "not valid JSON"),
    "meta-not-object": (with_meta(lambda m: [1, 2]), "not a JSON object"),
    "no-payload-sha256": (with_meta(lambda m: None, payload_sha256=""), "sha256 mismatch"),
    "sha-mismatch-flip-data-byte": (flip_data_byte, "sha256 mismatch"),
    "missing-field-seed": (with_meta(drop("seed")), "missing field(s) seed"),
    "missing-field-model": (with_meta(drop("model")), "missing field(s) model"),
    "missing-param-shapes": (with_meta(drop("param_shapes")), "missing field(s) param_shapes"),
    "level-not-int": (with_meta(put("level", "2")), "'level' must be an integer"),
    "density-edited": (with_meta(put("density", 0.99)), "density"),
    "density-huge-int": (with_meta(put("density", 10**400)), "density"),
    "head-density-nan": (with_meta(put("head_density", float("nan"))), "head_density"),
    "shape-with-bool": (
        with_meta(lambda m: m["param_shapes"].__setitem__("conv.weight", [True, 1, 3, 3])),
        "is not a shape",
    ),
    "mask-length-wrong": (
        with_meta(lambda m: m["mask_lengths"].__setitem__("conv.weight", 17)),
        "mask_lengths['conv.weight']",
    ),
    "prunable-names-disagree": (
        with_meta(put("prunable_names", ["conv.weight"])),
        "prunable_names and param_shapes disagree",
    ),
    "mask-as-float32": (
        with_tensors(lambda t: set_(t, "mask/conv.weight", t["mask/conv.weight"].float())),
        "mask 'conv.weight' holds 3 torch.float32",
    ),
    "mask-as-bool": (
        with_tensors(lambda t: set_(t, "mask/conv.weight", t["mask/conv.weight"].bool())),
        "mask 'conv.weight' holds 3 torch.bool",
    ),
    "weight-as-int": (
        with_tensors(lambda t: set_(t, "weight/conv.weight", t["weight/conv.weight"].long())),
        "non-float dtype torch.int64",
    ),
    "weight-shape-disagrees": (
        with_tensors(
            lambda t: set_(t, "weight/conv.weight", t["weight/conv.weight"].reshape(2, 9))
        ),
        "weight 'conv.weight' has shape [2, 9] but its mask has [2, 1, 3, 3]",
    ),
    "mask-too-short": (
        with_tensors(lambda t: set_(t, "mask/conv.weight", t["mask/conv.weight"][:2].clone())),
        "mask 'conv.weight' holds 2",
    ),
    "mask-missing": (with_tensors(lambda t: t.pop("mask/fc.weight")), "lacks its mask or weight"),
    "unexpected-tensor": (
        with_tensors(lambda t: set_(t, "extra/x", torch.zeros(1))),
        "unexpected tensor 'extra/x'",
    ),
    "pad-bits-set": (with_tensors(pad_bit), "non-zero pad bits"),
    "nan-weight": (with_tensors(poke("weight/conv.weight", float("nan"))), "NaN or infinite"),
    "inf-weight": (with_tensors(poke("weight/fc.weight", float("inf"))), "NaN or infinite"),
    "neg-inf-weight": (with_tensors(poke("weight/fc.weight", -float("inf"))), "NaN or infinite"),
    "nan-bias": (
        with_tensors(poke("state/fc.bias", float("nan"))),
        "state entry 'fc.bias' contains NaN",
    ),
    "nonzero-pruned-weight": (
        with_tensors(poke("weight/conv.weight", 0.5, kept=False)),
        "non-zero values at pruned positions",
    ),
    "v2-more-kept-values": (
        with_v2_tensors(
            lambda t: set_(t, "kept/fc.weight", torch.cat([t["kept/fc.weight"], torch.ones(3)]))
        ),
        "stores",
    ),
    "v2-fewer-kept-values": (
        with_v2_tensors(lambda t: set_(t, "kept/fc.weight", t["kept/fc.weight"][:-1].clone())),
        "but its mask keeps",
    ),
    "v2-mask-and-values-disagree": (
        with_v2_tensors(lambda t: t["mask/conv.weight"].__setitem__(0, 0)),
        "but its mask keeps",
    ),
    "v2-kept-not-1d": (
        with_v2_tensors(lambda t: set_(t, "kept/fc.weight", t["kept/fc.weight"].reshape(1, -1))),
        "1-D float tensor",
    ),
    "v2-kept-as-int": (
        with_v2_tensors(lambda t: set_(t, "kept/fc.weight", t["kept/fc.weight"].long())),
        "1-D float tensor",
    ),
    "v2-dense-weights": (
        with_v2_tensors(lambda t: set_(t, "weight/fc.weight", torch.zeros(3))),
        "unexpected tensor 'weight/fc.weight'",
    ),
    "v2-nan-kept": (
        with_v2_tensors(lambda t: t["kept/conv.weight"].__setitem__(0, float("nan"))),
        "NaN or infinite",
    ),
    "v2-truncated-values": (v2_truncated_values, "truncated or corrupted"),
    "pickle-renamed": (lambda: pickle.dumps({"masks": [1, 2, 3], "w": [0.5]}), "pickle"),
    "pickle-protocol-0": (
        lambda: pickle.dumps({"masks": [1, 2, 3]}, protocol=0),
        "is a text file",  # protocol 0 is printable text
    ),
    "zip-renamed": (zip_bytes, "zip archive"),
}


def write_case(tmp_path: Path, name: str) -> Path:
    build, _ = CORPUS[name]
    path = tmp_path / f"{name}.ticket"
    path.write_bytes(build())
    return path


def assert_one_line_error(err: TicketError, path: Path, reason: str) -> None:
    msg = str(err)
    assert "\n" not in msg and "\r" not in msg, msg
    assert msg.startswith(f"{path}: "), msg
    assert reason in msg, msg
    assert "; " in msg, f"no fix given: {msg}"  # "<file>: <reason>; <fix>"
    assert len(msg) < 400, msg


def cli_verify(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch, main=cli.main
) -> tuple[int, str]:
    """Run ``ticket verify PATH`` through ``main``: the typer app, or the console entry point
    (``entry.main``), which checks tickets without typer and torch."""
    monkeypatch.setattr(sys, "argv", ["transfer-bench", "ticket", "verify", str(path)])
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main()
    out = capsys.readouterr()
    return e.value.code, out.out + out.err


def squash(text: str) -> str:
    """Drop all whitespace: rich wraps long lines (even inside a path) at the console width."""
    return "".join(text.split())


def test_valid_ticket_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.ticket"
    path.write_bytes(tiny_blob())
    back = load_ticket(path)
    for name, m in tiny_ticket().masks.items():
        assert torch.equal(back.masks[name], m)
        assert torch.equal(back.weights[name], tiny_ticket().weights[name])
    assert back.meta == tiny_ticket().meta


@pytest.mark.parametrize("name", list(CORPUS))
def test_corpus_rejected(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    path = write_case(tmp_path, name)
    reason = CORPUS[name][1]
    with pytest.raises(TicketError) as e:
        load_ticket(path)
    assert_one_line_error(e.value, path, reason)

    for main in (cli.main, entry_point.main):
        code, output = cli_verify(path, capsys, monkeypatch, main)
        assert code == 1, output
        assert "Traceback" not in output
        assert squash(output).startswith("FAILED:")
        assert squash(str(path)) in squash(output) and squash(reason) in squash(output)


@pytest.mark.parametrize("kind", ["directory", "missing", "nul-in-path"])
def test_bad_paths_rejected(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    path = {
        "directory": tmp_path / "dir.ticket",
        "missing": tmp_path / "missing.ticket",
        "nul-in-path": tmp_path / "a\0b.ticket",
    }[kind]
    reason = {
        "directory": "is a directory",
        "missing": "no such ticket file",
        "nul-in-path": "not a usable path",
    }[kind]
    if kind == "directory":
        path.mkdir()
    with pytest.raises(TicketError) as e:
        load_ticket(path)
    assert_one_line_error(e.value, path, reason)
    if kind != "nul-in-path":  # a NUL cannot be passed through argv
        code, output = cli_verify(path, capsys, monkeypatch)
        assert code == 1 and "Traceback" not in output
        assert squash(reason) in squash(output)


def test_cli_subprocess_rejects_without_traceback(tmp_path: Path) -> None:
    path = write_case(tmp_path, "weight-as-int")
    proc = subprocess.run(
        [sys.executable, "-m", "transfer_bench.cli", "ticket", "verify", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**os.environ, "COLUMNS": "1000"},
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "non-float dtype" in proc.stderr


def test_cli_verify_message_is_literal_and_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    folder = tmp_path / "[red]"  # valid rich markup: rich would silently drop it from the path
    folder.mkdir()
    path = folder / ("long-name-" * 12 + ".ticket")  # longer than an 80-column console
    path.write_bytes(with_meta(lambda m: None, format="[/x]")())  # rich: MarkupError
    code, output = cli_verify(path, capsys, monkeypatch)
    assert code == 1 and "Traceback" not in output
    assert len(output.strip().splitlines()) == 1, output
    assert str(path) in output and "'[/x]'" in output


# --------------------------------------------------------------------------------------- fuzzing


def check_load(path: Path) -> None:
    """``load_ticket`` returns the original tensors or raises a one-line TicketError."""
    try:
        back = load_ticket(path)
    except TicketError as e:
        msg = str(e)
        assert "\n" not in msg and msg.startswith(f"{path}: "), msg
        return
    # the payload digest covers every tensor: a file that loads holds the original ones
    ref = tiny_ticket()
    assert set(back.masks) == set(ref.masks)
    for name in ref.masks:
        assert torch.equal(back.masks[name], ref.masks[name])
        assert torch.equal(back.weights[name], ref.weights[name])
    for name, v in ref.state.items():
        assert torch.equal(back.state[name], v)


# bounded and reproducible: no example database written into the checkout, fixed seed per test
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
POSITION = st.tuples(st.sampled_from(["header", "anywhere"]), st.integers(0, 2**20))
MUTATION = st.one_of(
    st.tuples(
        st.just("overwrite"),
        st.lists(st.tuples(POSITION, st.integers(0, 255)), min_size=1, max_size=8),
        st.booleans(),
    ),
    st.tuples(st.just("truncate"), POSITION),
    st.tuples(st.just("insert"), POSITION, st.binary(min_size=1, max_size=32), st.booleans()),
    st.tuples(st.just("delete"), POSITION, st.integers(1, 64), st.booleans()),
)


def mutate(blob: bytes, mutation: tuple) -> bytes:
    """Apply one mutation; ``fix_length`` rewrites the header length field to the new header end
    so that edits inside the JSON reach the JSON and metadata checks."""
    raw = bytearray(blob)
    end = header_end(blob)

    def at(pos: tuple[str, int], size: int) -> int:
        region, n = pos
        return 8 + n % (end - 8) if region == "header" else n % max(size, 1)

    kind = mutation[0]
    if kind == "overwrite":
        for pos, value in mutation[1]:
            raw[at(pos, len(raw))] = value
        return bytes(raw)
    if kind == "truncate":
        return bytes(raw[: at(mutation[1], len(raw))])
    i = at(mutation[1], len(raw))
    if kind == "insert":
        raw[i:i] = mutation[2]
        delta = len(mutation[2])
    else:
        delta = -len(raw[i : i + mutation[2]])
        del raw[i : i + mutation[2]]
    if mutation[3] and 8 <= i < end:
        raw[:8] = (end - 8 + delta).to_bytes(8, "little")
    return bytes(raw)


@FUZZ
@given(mutation=MUTATION)
def test_fuzz_mutated_bytes(tmp_path: Path, mutation: tuple) -> None:
    path = tmp_path / "fuzz.ticket"
    path.write_bytes(mutate(tiny_blob(), mutation))
    check_load(path)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=8,
)
# edge values tried often: beyond float / int64 range, negative, non-finite, wrong types
EDGE = st.sampled_from(
    [0, -1, 1, 0.5, 2**63, 10**400, -(10**400), float("nan"), float("inf"), True, "", [], {}]
)
META_PATHS = [(k,) for k in [*fmt.REQUIRED_META, "prunable_names"]] + [
    ("param_shapes", "conv.weight"),
    ("mask_lengths", "fc.weight"),
    ("layer_density", "conv.weight"),
    ("model", "name"),
]


@FUZZ
@given(where=st.sampled_from(META_PATHS), value=EDGE | JSON)
def test_fuzz_metadata_values(tmp_path: Path, where: tuple[str, ...], value: Any) -> None:
    """Any JSON value in any metadata field, with a correct digest: load or a TicketError."""
    meta = json.loads(json.dumps(tiny_ticket().meta))
    target = meta
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    path = tmp_path / "meta.ticket"
    path.write_bytes(encode(fmt._tensors(tiny_ticket()), meta))
    check_load(path)


# ----------------------------------------------------------------------------------------- apply


@functools.cache
def lenet_ticket() -> Ticket:
    model = build_model("lenet_300_100", num_classes=10, in_channels=1, image_size=8, seed=0)
    return make_ticket(model, density=0.2)


def test_apply_lenet_ticket_to_conv_model_names_first_parameter() -> None:
    model = build_model("conv2", num_classes=10, in_channels=1, image_size=8, seed=0)
    with pytest.raises(TicketError) as e:
        apply_ticket(lenet_ticket(), model)
    msg = str(e.value)
    assert "\n" not in msg
    assert "'features.0.weight' [64, 1, 3, 3]" in msg, msg
    assert "'fc1.weight' [300, 64]" in msg, msg
    assert "lenet_300_100" in msg


def test_apply_to_other_input_size_names_first_shape_mismatch() -> None:
    # 12x12 inputs: fc1 differs (first), and with 5 classes the head differs too (allowed)
    model = build_model("lenet_300_100", num_classes=5, in_channels=1, image_size=12, seed=0)
    with pytest.raises(TicketError) as e:
        apply_ticket(lenet_ticket(), model, head="keep")
    msg = str(e.value)
    assert "\n" not in msg
    assert "'fc1.weight' has shape [300, 144] in the model but [300, 64] in the ticket" in msg


def test_apply_keep_head_with_other_class_count_names_shapes() -> None:
    model = build_model("lenet_300_100", num_classes=5, in_channels=1, image_size=8, seed=0)
    with pytest.raises(TicketError) as e:
        apply_ticket(lenet_ticket(), model, head="keep")
    msg = str(e.value)
    assert "'fc.weight' has shape [5, 100] in the model but [10, 100] in the ticket" in msg
    masks = apply_ticket(
        lenet_ticket(), model, head="auto", generator=torch.Generator().manual_seed(0)
    )
    assert masks["fc.weight"].shape == (5, 100)
    assert torch.equal(masks["fc1.weight"], lenet_ticket().masks["fc1.weight"])


def test_apply_ticket_with_extra_parameter() -> None:
    class Fewer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.fc = nn.Linear(32, 3)
            self.prunable_names = ("conv.weight",)
            self.head_names = ("fc.weight", "fc.bias")

    with pytest.raises(TicketError, match=r"ticket parameter 'fc\.weight' \[3, 32\]"):
        apply_ticket(tiny_ticket(), Fewer())


# ----------------------------------------------------------------------------------- determinism

SAVE_SCRIPT = """
import sys, torch
from transfer_bench.models import build_model
from transfer_bench.tickets import save_ticket, ticket_from_state
m = build_model("lenet_300_100", num_classes=10, in_channels=1, image_size=4, seed=0)
g = torch.Generator().manual_seed(0)
p = dict(m.named_parameters())
masks = {n: torch.rand(p[n].shape, generator=g) < 0.3 for n in m.prunable_names}
meta = {"level": 1, "rewind": 0, "seed": 0, "source": {"a": 1, "b": 2}, "search": {},
        "suite": {"name": "det"}, "model": m.model_spec}
save_ticket(ticket_from_state(m.state_dict(), masks, m.prunable_names, m.head_names, meta),
            sys.argv[1])
"""


def test_save_is_byte_deterministic_across_processes(tmp_path: Path) -> None:
    paths = [tmp_path / f"p{i}.ticket" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SAVE_SCRIPT, str(p)],
            cwd=REPO,
            env={**os.environ, "PYTHONHASHSEED": str(i + 1)},
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, p in enumerate(paths)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    a, b = (p.read_bytes() for p in paths)
    assert a == b
    # still a standard safetensors file, readable by safetensors itself and by load_ticket
    tensors = st_load_file(paths[0])
    assert {k: v.shape for k, v in tensors.items()} == {k: v.shape for k, v in st_load(a).items()}
    back = load_ticket(paths[0])
    for name, w in back.weights.items():
        assert torch.equal(tensors["kept/" + name], w[back.masks[name]])
    assert back.meta["source"] == {"a": 1, "b": 2}


def test_ticket_bytes_ignore_dict_order(tmp_path: Path) -> None:
    t = tiny_ticket()
    shuffled = Ticket(
        masks=dict(t.masks),
        weights=dict(reversed(t.weights.items())),
        state=dict(reversed(t.state.items())),
        meta=dict(reversed(t.meta.items())),
    )
    assert ticket_bytes(shuffled) == ticket_bytes(t)
    blob = ticket_bytes(t)
    n = int.from_bytes(blob[:8], "little")
    assert n % 8 == 0 and (8 + n) % 8 == 0
    header = json.loads(blob[8 : 8 + n])
    assert list(header) == sorted(header) and list(header)[0] == "__metadata__"
    for entry in (v for k, v in header.items() if k != "__metadata__"):
        size = {"F32": 4, "I64": 8, "U8": 1}[entry["dtype"]]
        assert entry["data_offsets"][0] % size == 0  # every tensor naturally aligned
    path = save_ticket(t, tmp_path / "t.ticket")
    assert path.read_bytes() == blob
    assert set(st_load_file(path)) == set(header) - {"__metadata__"}
