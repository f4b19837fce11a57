"""The dataset catalogue: entry fields, ``catalog:`` loading from a local mirror offline, errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from transfer_bench.config import DatasetSpec, InputSpec
from transfer_bench.data import catalogue_spec, list_catalogue, list_sources, load_dataset
from transfer_bench.data.catalogue import CATALOGUE, MIRROR_ENV, get_entry, resolve
from transfer_bench.data.sources import split_hf_ref
from transfer_bench.errors import DatasetError
from transfer_bench.training.augment import AUGMENTATIONS

REQUIRED = {
    "mnist", "fashion_mnist", "kmnist", "svhn", "cifar10", "cifar100", "places365",
    "imagenet32", "imagenet64",
}  # fmt: skip


def _spec(source: str, **fields: object) -> DatasetSpec:
    # model_construct: DatasetSpec's source validator does not list the catalog: prefix (config.py)
    return DatasetSpec.model_construct(source=source, **fields)


def test_every_entry_has_the_fields() -> None:
    entries = list_catalogue()
    assert REQUIRED <= {e.name for e in entries}
    assert [e.name for e in entries] == sorted(CATALOGUE)
    for e in entries:
        assert CATALOGUE[e.name] is e and get_entry(e.name) is e
        owner, _, repo = e.hub_id.partition("/")
        assert owner and repo and "/" not in repo, e.name
        assert e.image and e.label and e.num_classes >= 2, e.name
        assert e.channels in (1, 3) and e.image_size >= 8, e.name
        assert e.train_split in e.sizes and (e.test_split is None or e.test_split in e.sizes)
        assert all(n > 0 for n in e.sizes.values()), e.name
        assert e.augment in AUGMENTATIONS and (e.verified or e.note), e.name
        assert e.source == f"hf:{e.hub_id}" + (f":{e.config}" if e.config else "")
        d = json.loads(json.dumps(e.to_dict()))
        assert d["hub_id"] == e.hub_id and d["sizes"] == dict(e.sizes) and d["config"] == e.config
    cifar10, cifar100, svhn = CATALOGUE["cifar10"], CATALOGUE["cifar100"], CATALOGUE["svhn"]
    assert (cifar10.hub_id, cifar10.image, cifar10.label) == ("uoft-cs/cifar10", "img", "label")
    assert (cifar100.label, cifar100.num_classes) == ("fine_label", 100)
    assert (svhn.hub_id, svhn.config) == ("ufldl-stanford/svhn", "cropped_digits")
    assert CATALOGUE["mnist"].augment == "crop"  # digits are not mirrored
    assert any(s.startswith("catalog:<") and "cifar10" in s for s in list_sources())


def _png(image: np.ndarray) -> dict[str, object]:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def _write_parquet(
    path: Path, images: list[np.ndarray], labels: list[int], image_col: str, label_col: str
) -> None:
    """A split as the hub stores it: ``{bytes, path}`` PNG image structs and integer labels."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({image_col: [_png(im) for im in images], label_col: labels})
    pq.write_table(table, path)


def _images(n: int, rng: np.random.Generator, size: int = 32) -> list[np.ndarray]:
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hub unreachable (offline mode) and an empty datasets cache."""
    import datasets
    import huggingface_hub.constants

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.delenv(MIRROR_ENV, raising=False)


def test_catalog_source_reads_a_local_mirror_offline(
    tmp_path: Path, offline: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(0)
    mirror = tmp_path / "mirror"
    # cifar10 as on the hub: data/<split>-*.parquet with columns img (PNG bytes) and label
    train, test = _images(20, rng), _images(10, rng)
    copy = mirror / "uoft-cs__cifar10" / "data"
    _write_parquet(
        copy / "train-00000-of-00001.parquet", train, list(range(10)) * 2, "img", "label"
    )
    _write_parquet(copy / "test-00000-of-00001.parquet", test, list(range(10)), "img", "label")
    # svhn: the subset's own directory, <config>/<split>-*.parquet, columns image and label
    svhn = mirror / "ufldl-stanford__svhn" / "cropped_digits"
    _write_parquet(
        svhn / "train-00000-of-00001.parquet", _images(8, rng), [1, 2] * 4, "image", "label"
    )
    _write_parquet(
        svhn / "test-00000-of-00001.parquet", _images(4, rng), [2, 1] * 2, "image", "label"
    )
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "absent") + ":" + str(mirror))

    assert resolve(CATALOGUE["cifar10"]) == (str(mirror / "uoft-cs__cifar10"), None, True)
    rgb32 = InputSpec(size=32, channels=3)
    ds = load_dataset(_spec("catalog:cifar10"), rgb32, split_seed=0, cache_dir=None)
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (10, 3, 32, 32)
    assert ds.num_classes == 10 and ds.info["split"]["method"] == "given"
    assert np.array_equal(ds.x_train[3].permute(1, 2, 0).numpy(), train[3])  # the img column
    assert ds.y_test.tolist() == list(range(10))
    origin = ds.info["origin"]
    assert origin["catalog"] == "cifar10" and origin["hub_id"] == "uoft-cs/cifar10"
    assert origin["loaded_from"] == str(mirror / "uoft-cs__cifar10")

    digits = load_dataset(_spec("catalog:svhn"), InputSpec(size=28), split_seed=0, cache_dir=None)
    assert digits.x_train.shape == (8, 1, 28, 28) and digits.num_classes == 2
    assert digits.info["origin"]["config"] == "cropped_digits"

    # fields written in the spec win over the entry's
    with pytest.raises(
        DatasetError, match="no column 'coarse_label'; available columns: img, label"
    ):
        load_dataset(
            _spec("catalog:cifar10", label="coarse_label"), rgb32, split_seed=0, cache_dir=None
        )
    # catalogue_spec: a validated hf: spec, pointing at the mirror copy when there is one
    spec = catalogue_spec("cifar10", max_train=10)
    assert spec.source == f"hf:{mirror / 'uoft-cs__cifar10'}" and spec.image == "img"
    assert (
        catalogue_spec("svhn", use_mirror=False).source == "hf:ufldl-stanford/svhn:cropped_digits"
    )
    small = load_dataset(spec, rgb32, split_seed=0, cache_dir=None)
    assert torch.equal(small.x_test, ds.x_test) and len(small.y_train) == 10


def test_offline_error_names_dataset_hub_id_and_fixes(
    tmp_path: Path, offline: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(DatasetError) as err:
        load_dataset(_spec("catalog:svhn"), InputSpec(), split_seed=0, cache_dir=None)
    msg = str(err.value)
    assert "\n" not in msg
    for part in (
        "'catalog:svhn'", "'ufldl-stanford/svhn'", "config 'cropped_digits'", "not available",
        "datasets.load_dataset('ufldl-stanford/svhn', 'cropped_digits')", "HF_DATASETS_CACHE",
        f"{MIRROR_ENV}=<dir>", "<dir>/ufldl-stanford__svhn/", "hf:<local dir>", "local:",
    ):  # fmt: skip
        assert part in msg, part
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path))
    with pytest.raises(DatasetError, match="none of its directories has ufldl-stanford__svhn/"):
        load_dataset(_spec("catalog:svhn"), InputSpec(), split_seed=0, cache_dir=None)


def test_unknown_name_and_hf_config_syntax(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    with pytest.raises(DatasetError, match="did you mean 'catalog:cifar10'"):
        load_dataset(_spec("catalog:cifar1O"), InputSpec(), split_seed=0, cache_dir=None)
    assert split_hf_ref("ufldl-stanford/svhn:cropped_digits") == (
        "ufldl-stanford/svhn",
        "cropped_digits",
    )
    assert split_hf_ref("uoft-cs/cifar10") == ("uoft-cs/cifar10", None)
    assert split_hf_ref("/data/copy") == ("/data/copy", None)
    calls: list[tuple[object, ...]] = []

    def fake(*args: object, **kwargs: object) -> None:
        calls.append((*args, kwargs.get("split")))
        raise ConnectionError(
            "Couldn't reach 'ufldl-stanford/svhn' on the Hub (OfflineModeIsEnabled)"
        )

    monkeypatch.setattr(datasets, "load_dataset", fake)
    with pytest.raises(DatasetError, match="config 'cropped_digits' split 'train'"):
        load_dataset(
            DatasetSpec(source="hf:ufldl-stanford/svhn:cropped_digits"),
            InputSpec(),
            split_seed=0,
            cache_dir=None,
        )
    assert calls == [("ufldl-stanford/svhn", "cropped_digits", "train")]
