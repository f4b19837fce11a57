"""Data layer: sources, adaptation, seeded splits, the safetensors cache and error messages."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from transfer_bench.config import DatasetSpec, InputSpec
from transfer_bench.data import ImageDataset, list_sources, load_dataset, normalize
from transfer_bench.data import dataset as dataset_mod
from transfer_bench.data.adapt import adapt_images
from transfer_bench.errors import DatasetError

GRAY28 = InputSpec(size=28, channels=1)
RGB32 = InputSpec(size=32, channels=3)


def _load(
    source: str, input: InputSpec = GRAY28, seed: int = 0, cache_dir=None, **kw
) -> ImageDataset:
    return load_dataset(
        DatasetSpec(source=source, **kw), input, split_seed=seed, cache_dir=cache_dir
    )


def _equal(a: ImageDataset, b: ImageDataset) -> bool:
    return (
        torch.equal(a.x_train, b.x_train)
        and torch.equal(a.y_train, b.y_train)
        and torch.equal(a.x_test, b.x_test)
        and torch.equal(a.y_test, b.y_test)
        and a.num_classes == b.num_classes
        and a.mean == b.mean
        and a.std == b.std
        and a.info == b.info
    )


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------- builtins


@pytest.mark.parametrize(
    ("source", "total"), [("builtin:digits", 1797), ("builtin:mnist-5k", 5000)]
)
@pytest.mark.parametrize("input", [GRAY28, RGB32], ids=["28x28x1", "32x32x3"])
def test_builtin_shapes(source: str, total: int, input: InputSpec) -> None:
    ds = _load(source, input)
    c, s = input.channels, input.size
    assert ds.name == source
    assert ds.x_train.dtype == torch.uint8 and ds.x_train.shape[1:] == (c, s, s)
    assert ds.x_test.dtype == torch.uint8 and ds.x_test.shape[1:] == (c, s, s)
    assert ds.y_train.dtype == torch.int64 and ds.y_test.dtype == torch.int64
    assert len(ds.x_train) + len(ds.x_test) == total
    assert len(ds.x_test) == math.ceil(total * 0.2)  # sklearn rounds the test share up
    assert ds.num_classes == 10
    assert set(ds.y_train.tolist()) == set(range(10)) == set(ds.y_test.tolist())
    assert len(ds.mean) == len(ds.std) == c
    assert all(0 < m < 1 for m in ds.mean) and all(0 < v < 1 for v in ds.std)
    assert int(ds.x_train.max()) > 200  # scaled to 0..255, not left at 0..16
    if c == 3:  # gray replicated to RGB
        assert torch.equal(ds.x_train[:, 0], ds.x_train[:, 2])
    info = json.loads(json.dumps(ds.info))
    assert info["split"]["method"] == "stratified"
    assert info["split"]["seed"] == 0 and info["split"]["fraction"] == 0.2
    assert info["sizes"] == {"train": len(ds.y_train), "test": len(ds.y_test)}


def test_split_stratified_and_deterministic() -> None:
    a, b, other = _load("builtin:digits"), _load("builtin:digits"), _load("builtin:digits", seed=1)
    assert _equal(a, b)
    assert not torch.equal(a.x_test, other.x_test)
    counts_all = np.bincount(np.r_[a.y_train.numpy(), a.y_test.numpy()], minlength=10)
    counts_test = np.bincount(a.y_test.numpy(), minlength=10)
    assert np.all(np.abs(counts_test - counts_all * 0.2) <= 1)


def test_max_train_max_test_subsample_stratified() -> None:
    ds = _load("builtin:digits", max_train=200, max_test=50)
    assert len(ds.y_train) == 200 and len(ds.y_test) == 50
    assert np.all(np.abs(np.bincount(ds.y_train.numpy(), minlength=10) - 20) <= 1)
    assert ds.info["split"]["train_size"] == 1437 and ds.info["sizes"]["train"] == 200
    assert _equal(ds, _load("builtin:digits", max_train=200, max_test=50))


def test_normalize_and_none() -> None:
    ds = _load("synthetic:norm", RGB32)
    z = normalize(ds.x_train, ds.mean, ds.std)
    assert z.dtype == torch.float32 and z.shape == ds.x_train.shape
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(z.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-2)
    raw = _load("synthetic:norm", InputSpec(size=32, channels=3, normalize="none"))
    assert raw.mean == (0.0, 0.0, 0.0) and raw.std == (1.0, 1.0, 1.0)
    assert torch.equal(raw.x_train, ds.x_train)


def test_adapt_channels_and_resize() -> None:
    red = np.zeros((2, 9, 9, 3), np.uint8)
    red[..., 0] = 255
    gray = adapt_images(red, InputSpec(size=20, channels=1))
    assert gray.shape == (2, 1, 20, 20) and torch.all(gray == 76)  # round(0.299 * 255)
    ragged = [np.full((5, 5), 10, np.uint8), np.full((7, 3, 3), 200, np.uint8)[..., 0], red[0]]
    out = adapt_images(ragged, InputSpec(size=6, channels=3))
    assert out.shape == (3, 3, 6, 6)
    assert torch.all(out[0] == 10) and torch.all(out[1] == 200)
    assert torch.all(out[2, 0] == 255) and torch.all(out[2, 1] == 0)


# --------------------------------------------------------------------------- synthetic


def test_synthetic_deterministic_and_configurable() -> None:
    a, b = _load("synthetic:toy"), _load("synthetic:toy", seed=5)
    assert torch.equal(a.x_train, b.x_train)  # given split: independent of the split seed
    assert a.info["split"]["method"] == "given" and len(a.y_train) + len(a.y_test) == 600
    assert not torch.equal(a.x_train, _load("synthetic:other").x_train)
    small = _load("synthetic:toy", num_classes=3, samples=60, test_split=None)
    assert small.num_classes == 3 and len(small.y_train) + len(small.y_test) == 60
    assert small.info["split"]["method"] == "stratified"
    with pytest.raises(DatasetError, match="samples"):
        _load("synthetic:toy", num_classes=10, samples=10)


# --------------------------------------------------------------------------- cache


def test_cache_written_and_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _load("builtin:digits", cache_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".safetensors"
    assert first.info["cache_key"][:40] in files[0].name

    def boom(spec: DatasetSpec) -> None:
        raise AssertionError("source read although the cache is valid")

    monkeypatch.setattr(dataset_mod, "load_raw", boom)
    second = _load("builtin:digits", cache_dir=tmp_path)
    assert _equal(first, second)
    with pytest.raises(AssertionError):  # another split seed is another cache entry
        _load("builtin:digits", seed=1, cache_dir=tmp_path)


@pytest.mark.parametrize("damage", ["garbage", "flip_payload", "truncate"])
def test_corrupt_cache_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    first = _load("synthetic:cache", cache_dir=tmp_path)
    (path,) = tmp_path.iterdir()
    data = bytearray(path.read_bytes())
    if damage == "garbage":
        path.write_bytes(b"not a safetensors file")
    elif damage == "flip_payload":
        data[-1] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        path.write_bytes(bytes(data[: len(data) // 2]))
    calls = []
    real = dataset_mod.load_raw
    monkeypatch.setattr(dataset_mod, "load_raw", lambda spec: calls.append(1) or real(spec))
    rebuilt = _load("synthetic:cache", cache_dir=tmp_path)
    assert calls == [1] and _equal(first, rebuilt)
    assert _equal(first, _load("synthetic:cache", cache_dir=tmp_path))  # now valid again
    assert calls == [1]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp files left


# --------------------------------------------------------------------------- hf:


def _write_hf_dir(root: Path, splits: dict[str, tuple[list[np.ndarray], list[int]]]) -> Path:
    import datasets

    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    (root / "data").mkdir(parents=True)
    for split, (images, labels) in splits.items():
        d = datasets.Dataset.from_dict(
            {"image": [Image.fromarray(im) for im in images], "label": labels}, features=features
        )
        d.to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
    return root


def _rgb_images(n: int, rng: np.random.Generator, size: int = 12) -> list[np.ndarray]:
    return [rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture
def hf_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


def test_hf_local_parquet_dir(tmp_path: Path, hf_offline: None) -> None:
    rng = np.random.default_rng(0)
    root = _write_hf_dir(
        tmp_path / "ds",
        {"train": (_rgb_images(20, rng), [3, 7] * 10), "test": (_rgb_images(6, rng), [7, 3] * 3)},
    )
    ds = _load(f"hf:{root}", GRAY28, cache_dir=tmp_path / "cache")
    assert ds.x_train.shape == (20, 1, 28, 28) and ds.x_test.shape == (6, 1, 28, 28)
    assert ds.num_classes == 2 and ds.info["classes"] == [3, 7]
    assert ds.y_train.tolist() == [0, 1] * 10 and ds.y_test.tolist() == [1, 0] * 3
    assert ds.info["split"]["method"] == "given"
    again = _load(f"hf:{root}", GRAY28, cache_dir=tmp_path / "cache")
    assert _equal(ds, again)

    # a dataset without a test split is split stratified; a named but absent split is an error
    only = _write_hf_dir(tmp_path / "only", {"train": (_rgb_images(20, rng, 10), [0, 1] * 10)})
    ds2 = _load(f"hf:{only}", RGB32)
    assert ds2.info["split"]["method"] == "stratified" and len(ds2.y_test) == 4
    with pytest.raises(DatasetError, match="validation"):
        _load(f"hf:{only}", test_split="validation")
    with pytest.raises(DatasetError, match=r"available columns: image, label"):
        _load(f"hf:{root}", image="img")
    with pytest.raises(DatasetError, match="does not exist"):
        _load(f"hf:{tmp_path / 'missing' / 'dir'}")


def test_hf_unreachable_message(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def offline(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Couldn't reach 'someone/mnist' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DatasetError) as err:
        _load("hf:someone/mnist")
    msg = str(err.value)
    assert "hf:someone/mnist" in msg and "'someone/mnist'" in msg
    assert "pre-download" in msg and "local:" in msg and "\n" not in msg


# --------------------------------------------------------------------------- local:


def test_local_npz(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    given = tmp_path / "given.npz"
    np.savez(
        given,
        x_train=rng.random((30, 16, 16, 3)).astype(np.float32),  # floats in 0..1
        y_train=np.arange(30) % 3,
        x_test=rng.random((9, 16, 16, 3)).astype(np.float32),
        y_test=np.arange(9) % 3,
    )
    ds = _load(f"local:{given}", GRAY28)
    assert ds.x_train.shape == (30, 1, 28, 28) and ds.info["split"]["method"] == "given"
    assert int(ds.x_train.max()) > 100
    flat = tmp_path / "flat.npz"
    np.savez(flat, x=rng.integers(0, 256, (40, 64), dtype=np.uint8), y=np.arange(40) % 4)
    ds2 = _load(f"local:{flat}", RGB32)
    assert ds2.x_train.shape == (32, 3, 32, 32) and ds2.num_classes == 4
    assert ds2.info["split"]["method"] == "stratified"
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((4, 8, 8)))
    with pytest.raises(DatasetError, match=r"bad\.npz.*x_train"):
        _load(f"local:{bad}")


def test_local_npz_with_named_arrays(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (40, 8, 8), dtype=np.uint8)
    named = tmp_path / "named.npz"
    np.savez(named, images=images, labels=np.arange(40) % 4)
    ds = _load(f"local:{named}", image="images", label="labels")
    assert ds.num_classes == 4 and ds.x_train.shape[0] + ds.x_test.shape[0] == 40
    # the spec's default names are image/label: a file using them needs no settings
    np.savez(tmp_path / "default.npz", image=images, label=np.arange(40) % 4)
    assert _load(f"local:{tmp_path / 'default.npz'}").num_classes == 4
    # given splits: <name>_train / <name>_test
    split = tmp_path / "split.npz"
    np.savez(
        split,
        pix_train=images[:30],
        cls_train=np.arange(30) % 3,
        pix_test=images[30:],
        cls_test=np.arange(10) % 3,
    )
    ds = _load(f"local:{split}", image="pix", label="cls")
    assert ds.info["split"]["method"] == "given" and ds.x_test.shape[0] == 10
    # a wrong name lists the arrays present and says how to name them
    with pytest.raises(DatasetError) as err:
        _load(f"local:{named}", image="imgs", label="labels")
    msg = str(err.value)
    assert "['images', 'labels']" in msg and "imgs_train" in msg and "image:" in msg
    np.savez(tmp_path / "half.npz", pix_train=images, cls_train=np.arange(40) % 2, pix_test=images)
    with pytest.raises(DatasetError, match="pix_test and cls_test must be given together"):
        _load(f"local:{tmp_path / 'half.npz'}", image="pix", label="cls")


def test_local_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(2)
    imgs = [rng.integers(0, 256, (8 + i % 3, 8, 3), dtype=np.uint8) for i in range(20)]
    table = pa.table(
        {
            "pixels": [{"bytes": _png(im), "path": None} for im in imgs],
            "y": ["cat", "dog"] * 10,
        }
    )
    path = tmp_path / "pets.parquet"
    pq.write_table(table, path)
    ds = _load(f"local:{path}", GRAY28, image="pixels", label="y")
    assert ds.x_train.shape == (16, 1, 28, 28) and ds.info["classes"] == ["cat", "dog"]
    assert ds.info["raw_image_shape"] == "mixed"

    lists = tmp_path / "lists.parquet"
    pq.write_table(
        pa.table(
            {"image": [np.full((6, 6), i * 10).tolist() for i in range(12)], "label": [0, 1] * 6}
        ),
        lists,
    )
    ds2 = _load(f"local:{lists}", InputSpec(size=6, channels=1))
    assert ds2.x_train.shape == (9, 1, 6, 6) and ds2.num_classes == 2
    with pytest.raises(DatasetError, match=r"available columns: pixels, y"):
        _load(f"local:{path}")


# --------------------------------------------------------------------------- errors


def test_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"unknown prefix 'ftp'.*builtin:digits.*local:"):
        load_dataset(
            DatasetSpec.model_construct(source="ftp:x"), GRAY28, split_seed=0, cache_dir=None
        )
    with pytest.raises(
        DatasetError, match=r"unknown builtin 'cifar'.*builtin:digits, builtin:mnist-5k"
    ):
        _load("builtin:cifar")
    missing = tmp_path / "nope.npz"
    with pytest.raises(DatasetError, match=r"nope\.npz does not exist.*x_train"):
        _load(f"local:{missing}")
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(DatasetError, match="unsupported suffix"):
        _load(f"local:{tmp_path / 'data.csv'}")
    with pytest.raises(DatasetError, match="num_classes"):
        _load("builtin:digits", num_classes=5)
    assert "builtin:digits" in list_sources() and "builtin:mnist-5k" in list_sources()
    assert any(s.startswith("hf:") for s in list_sources())
