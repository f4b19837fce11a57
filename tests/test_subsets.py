"""Dataset subsets: ``classes`` (ids or names, relabelled in order), exact stratified
``train_size``/``test_size`` (seeded, deterministic, nested), recorded rows, and one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from transfer_bench.config import DatasetSpec, InputSpec, parse_suite
from transfer_bench.data import load_dataset
from transfer_bench.data.subset import class_quotas, rows_digest, stratified_take
from transfer_bench.errors import ConfigError, DatasetError

GRAY = InputSpec(size=8, channels=1)


def _load(source: str, seed: int = 0, **kw):
    return load_dataset(DatasetSpec(source=source, **kw), GRAY, split_seed=seed, cache_dir=None)


# --------------------------------------------------------------------------- pure functions


@pytest.mark.parametrize(
    ("counts", "n"), [([50, 50, 50], 31), ([90, 9, 1], 10), ([5, 5], 10), ([100, 3, 3, 3], 4)]
)
def test_quotas_sum_to_n_proportional_and_at_least_one(counts: list[int], n: int) -> None:
    c = np.array(counts)
    q = class_quotas(c, n)
    assert q.sum() == n and (q >= 1).all() and (q <= c).all()
    exact = c * n / c.sum()
    if (exact >= 1).all():  # no class needed the minimum of one: within one of proportional
        assert np.all(np.abs(q - exact) < 1.0)


def test_take_is_exact_stratified_deterministic_and_nested() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, size=2000)
    small = stratified_take(y, 100, 7, "train", [0, 1, 2, 3], "t")
    large = stratified_take(y, 1000, 7, "train", [0, 1, 2, 3], "t")
    assert len(small) == 100 and len(large) == 1000
    assert np.array_equal(small, stratified_take(y, 100, 7, "train", [0, 1, 2, 3], "t"))
    assert set(small) <= set(large)  # a smaller subset lies inside a larger one
    other = stratified_take(y, 100, 8, "train", [0, 1, 2, 3], "t")
    assert not np.array_equal(small, other)  # the seed matters
    share = np.bincount(y, minlength=4) / len(y)
    assert np.all(np.abs(np.bincount(y[large], minlength=4) - 1000 * share) <= 1)


def test_rows_digest_depends_on_the_set_only() -> None:
    assert rows_digest(np.array([3, 1, 2])) == rows_digest(np.array([1, 2, 3]))
    assert rows_digest(np.array([1, 2])) != rows_digest(np.array([1, 3]))


# --------------------------------------------------------------------------- load_dataset


def test_train_and_test_size_exact_stratified_and_recorded() -> None:
    ds = _load("builtin:digits", train_size=300, test_size=90)
    assert len(ds.y_train) == 300 and len(ds.y_test) == 90
    assert np.all(np.abs(np.bincount(ds.y_train.numpy(), minlength=10) - 30) <= 1)
    rows = ds.info["rows"]
    assert (
        rows["train"]["count"] == 300 and rows["test"]["of"] == "train"
    )  # digits has no test split
    again = _load("builtin:digits", train_size=300, test_size=90)
    assert rows == again.info["rows"] and np.array_equal(ds.x_train, again.x_train)
    assert _load("builtin:digits", seed=1, train_size=300).info["rows"]["train"] != rows["train"]
    whole = _load("builtin:digits")
    assert whole.info["rows"]["train"]["count"] == len(whole.y_train)


def test_smaller_subset_images_are_inside_the_larger() -> None:
    big = _load("synthetic:nest", num_classes=4, samples=400, train_size=200)
    small = _load("synthetic:nest", num_classes=4, samples=400, train_size=40)
    flat = {bytes(x.numpy().tobytes()) for x in big.x_train}
    assert all(bytes(x.numpy().tobytes()) in flat for x in small.x_train)


def _npz(tmp_path: Path, labels: list) -> Path:
    rng = np.random.default_rng(1)
    y = np.array(labels)
    x = rng.integers(0, 256, size=(len(y), 8, 8), dtype=np.uint8)
    path = tmp_path / "data.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x[:12], y_test=y[:12])
    return path


def test_classes_keep_and_relabel_in_the_given_order(tmp_path: Path) -> None:
    labels = ["cat", "dog", "eel", "fox"] * 15
    path = _npz(tmp_path, labels)
    ds = _load(f"local:{path}", classes=["fox", "cat"])
    assert ds.num_classes == 2 and ds.info["classes"] == ["fox", "cat"]
    assert len(ds.y_train) == 30 and len(ds.y_test) == 6
    raw = np.load(path)
    fox = raw["x_train"][np.array(labels) == "fox"]
    assert np.array_equal(ds.x_train[ds.y_train == 0][:, 0].numpy(), fox)  # fox became label 0
    ids = _load(f"local:{_npz(tmp_path, [3, 5, 7] * 12)}", classes=[7, 3])
    assert ids.info["classes"] == [7, 3] and ids.num_classes == 2


def _hub_dir(tmp_path: Path) -> Path:
    """A local copy in the hub's parquet layout, written by ``datasets`` with a ClassLabel column."""
    datasets = pytest.importorskip("datasets")
    rng = np.random.default_rng(2)
    names = ["airplane", "automobile", "bird", "cat"]
    root = tmp_path / "hub"
    for split, n in (("train", 80), ("test", 40)):
        feats = datasets.Features(
            {"img": datasets.Image(), "label": datasets.ClassLabel(names=names)}
        )
        images = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(n)]
        d = datasets.Dataset.from_dict({"img": images, "label": [i % 4 for i in range(n)]}, feats)
        (root / "data").mkdir(parents=True, exist_ok=True)
        d.to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
    return root


def test_classes_by_name_from_a_class_label_column(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    root = _hub_dir(tmp_path)
    ds = _load(f"hf:{root}", image="img", classes=["cat", "airplane"], train_size=20)
    assert ds.info["classes"] == [3, 0] and ds.info["class_names"] == ["cat", "airplane"]
    assert len(ds.y_train) == 20 and sorted(set(ds.y_train.tolist())) == [0, 1]
    assert len(ds.y_test) == 20  # the test split keeps its 10 cats and 10 airplanes
    with pytest.raises(DatasetError, match=r"'ship' is not a class.*airplane \(0\), automobile"):
        _load(f"hf:{root}", image="img", classes=["ship", "cat"])
    with pytest.raises(DatasetError, match="listed twice"):
        _load(f"hf:{root}", image="img", classes=["cat", 3])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"train_size": 5000}, r"train_size 5000 is more than the 1437 train images .*<= 1437"),
        ({"test_size": 5}, r"test_size 5 cannot hold one image of each of the 10 classes"),
        ({"classes": [3, 11]}, r"classes: 11 is not a class of this dataset; its classes are 0, 1"),
    ],
)
def test_bad_subsets_are_one_line_errors(fields: dict, message: str) -> None:
    with pytest.raises(DatasetError, match=message) as e:
        _load("builtin:digits", **fields)
    assert "\n" not in str(e.value)


SUITE = {
    "name": "s",
    "seeds": [0],
    "model": {"name": "lenet_300_100"},
    "search": {"sources": ["a"]},
}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"train_size": 10, "max_train": 10}, "either train_size .* or max_train .*, not both"),
        ({"classes": [1, 1]}, r"classes\[1\]: class 1 is listed twice"),
        ({"classes": [1]}, r"classes: .*at least 2"),
        ({"classes": [0, 1, 2], "num_classes": 2}, "num_classes is 2 but classes lists 3"),
        ({"train_size": 1}, "train_size: .*greater than or equal to 2"),
    ],
)
def test_bad_subset_fields_are_config_errors(spec: dict, message: str) -> None:
    data = {**SUITE, "datasets": {"a": {"source": "builtin:digits", **spec}}}
    with pytest.raises(ConfigError, match=message):
        parse_suite(data)


def test_subset_fields_leave_older_run_ids_alone() -> None:
    """New fields at their defaults are not hashed, so results of older suites stay valid."""
    from transfer_bench.runs.plan import search_config

    suite = parse_suite({**SUITE, "datasets": {"a": {"source": "builtin:digits"}}})
    assert search_config(suite, "a")["dataset"] == {"name": "a", "source": "builtin:digits"}


MIRROR = Path(__file__).resolve().parents[2] / "shared" / "hf-mirror"


@pytest.mark.slow
@pytest.mark.skipif(
    not (MIRROR / "uoft-cs__cifar10").is_dir(),
    reason="no local CIFAR-10 copy at ../shared/hf-mirror (a fresh clone has none; CI has it)",
)
def test_mirror_cifar10_loads_through_the_catalogue(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRANSFER_BENCH_HF_MIRROR", os.fspath(MIRROR))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    vehicles = ["airplane", "automobile", "ship", "truck"]
    spec = DatasetSpec(source="catalog:cifar10", classes=vehicles, train_size=400, test_size=200)
    ds = load_dataset(spec, InputSpec(size=32, channels=3), split_seed=0, cache_dir=tmp_path)
    assert ds.x_train.shape == (400, 3, 32, 32) and ds.x_test.shape == (200, 3, 32, 32)
    assert ds.info["class_names"] == vehicles and ds.info["classes"] == [0, 1, 8, 9]
    assert np.array_equal(np.bincount(ds.y_train.numpy()), [100] * 4)
    origin = ds.info["origin"]
    assert origin["catalog"] == "cifar10" and origin["loaded_from"].endswith("uoft-cs__cifar10")
    assert "uoft-cs__cifar10" in origin["mirror_note"]  # the mirror README's line travels along
    cached = load_dataset(spec, InputSpec(size=32, channels=3), split_seed=0, cache_dir=tmp_path)
    assert cached.info == ds.info and np.array_equal(cached.x_train, ds.x_train)
