"""Named datasets of the transfer papers, resolved to Hugging Face hub sources: ``catalog:<name>``.

Each entry records the hub id, the subset (``config``) where the repository has several, the image
and label columns, the splits and the class count, so a suite can say ``source: catalog:cifar100``
instead of spelling out ``hf:uoft-cs/cifar100`` with ``image: img`` and ``label: fine_label``. Fields
written explicitly in the dataset spec (``image``, ``label``, ``train_split``, ``test_split``) win
over the entry's.

Offline use. The hub is needed once per dataset; afterwards ``datasets`` reuses its cache
(``HF_DATASETS_CACHE``, also with ``HF_DATASETS_OFFLINE=1``). Without a cache, a local copy can be
named with the environment variable ``TRANSFER_BENCH_HF_MIRROR=<dir>`` (several directories may be
joined with ``os.pathsep``): the copy of hub id ``owner/name`` is the directory
``<dir>/owner__name`` (``/`` replaced by ``__``) holding parquet files whose names start with the
split (``data/train-00000-of-00001.parquet``, ``data/test-...``), with the entry's column names.
For a repository with subsets, ``<dir>/owner__name/<config>/`` holds the subset's files; a full
repository snapshot (``huggingface_hub.snapshot_download(..., repo_type="dataset")``, with its
``README.md``) also works as ``<dir>/owner__name``. A mirror may describe its copies in
``<dir>/README.md``: the lines naming a copy's folder are recorded with every dataset loaded from
it (``origin.mirror_note``) and shown in reports.

Hub ids and columns were checked against the dataset cards where ``verified`` is true; the others
(``note`` says what is unconfirmed) fail with a clear column error if the card differs, and can be
fixed by setting ``image``/``label`` in the spec.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from transfer_bench.config import DatasetSpec
from transfer_bench.data.sources import (
    HubUnavailableError,
    RawData,
    load_hf,
    register_source,
)
from transfer_bench.errors import DatasetError

#: Environment variable naming directories with local copies of hub datasets (see module doc).
MIRROR_ENV = "TRANSFER_BENCH_HF_MIRROR"


@dataclass(frozen=True)
class CatalogueEntry:
    """One named dataset: where it lives on the hub and how its columns and splits are called.

    ``sizes`` maps each split on the hub to its number of examples; ``image_size``/``channels`` are
    the native resolution; ``augment`` is the augmentation the LTH papers use for it (digits and
    characters are not mirrored); ``verified`` says whether hub id, columns and splits were checked
    against the dataset card (``note`` says what was not).
    """

    name: str
    hub_id: str
    config: str | None
    image: str
    label: str
    train_split: str
    test_split: str | None
    num_classes: int
    image_size: int
    channels: int
    sizes: Mapping[str, int] = field(hash=False)
    augment: str = "crop_flip"
    verified: bool = True
    note: str = ""

    @property
    def source(self) -> str:
        """The equivalent ``hf:`` source string (``hf:<hub id>[:<config>]``)."""
        return f"hf:{self.hub_id}" + (f":{self.config}" if self.config else "")

    @property
    def mirror_name(self) -> str:
        """Directory name of a local copy under ``$TRANSFER_BENCH_HF_MIRROR``."""
        return self.hub_id.replace("/", "__")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields plus the ``source`` string."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["sizes"] = dict(self.sizes)
        out["source"] = self.source
        return out


def _entry(**kw: Any) -> CatalogueEntry:
    kw["sizes"] = MappingProxyType(dict(kw["sizes"]))
    return CatalogueEntry(**kw)


# fmt: off
_ENTRIES = (
    _entry(
        name="mnist", hub_id="ylecun/mnist", config=None, image="image", label="label",
        train_split="train", test_split="test", num_classes=10, image_size=28, channels=1,
        sizes={"train": 60_000, "test": 10_000}, augment="crop",
    ),
    _entry(
        name="fashion_mnist", hub_id="zalando-datasets/fashion_mnist", config=None,
        image="image", label="label", train_split="train", test_split="test", num_classes=10,
        image_size=28, channels=1, sizes={"train": 60_000, "test": 10_000},
        note="Morcos et al. (reproduction) use Grayscale(3), crop and flip",
    ),
    _entry(
        name="kmnist", hub_id="tanganke/kmnist", config="kmnist", image="image", label="label",
        train_split="train", test_split="test", num_classes=10, image_size=28, channels=1,
        sizes={"train": 60_000, "test": 10_000}, augment="crop",
        note="Kuzushiji-MNIST (10 hiragana classes), parquet conversion of the original files",
    ),
    _entry(
        name="svhn", hub_id="ufldl-stanford/svhn", config="cropped_digits", image="image",
        label="label", train_split="train", test_split="test", num_classes=10, image_size=32,
        channels=3, sizes={"train": 73_257, "test": 26_032, "extra": 531_131}, augment="crop",
        note="cropped digits; the 'extra' split is not used by default",
    ),
    _entry(
        name="cifar10", hub_id="uoft-cs/cifar10", config=None, image="img", label="label",
        train_split="train", test_split="test", num_classes=10, image_size=32, channels=3,
        sizes={"train": 50_000, "test": 10_000},
    ),
    _entry(
        name="cifar100", hub_id="uoft-cs/cifar100", config=None, image="img", label="fine_label",
        train_split="train", test_split="test", num_classes=100, image_size=32, channels=3,
        sizes={"train": 50_000, "test": 10_000},
        note="fine labels; label: coarse_label gives the 20 superclasses",
    ),
    _entry(
        name="imagenet32", hub_id="benjamin-paine/imagenet-1k-32x32", config=None, image="image",
        label="label", train_split="train", test_split="validation", num_classes=1000,
        image_size=32, channels=3,
        sizes={"train": 1_281_167, "validation": 50_000, "test": 100_000}, verified=False,
        note="downsampled ImageNet-1k (Chrabaszcz et al. 2017 style); hub id and splits checked, "
        "columns image/label assumed; the test split is unlabeled, so validation is the test set; "
        "ImageNet terms may have to be accepted on the hub (HF token)",
    ),
    _entry(
        name="imagenet64", hub_id="benjamin-paine/imagenet-1k-64x64", config=None, image="image",
        label="label", train_split="train", test_split="validation", num_classes=1000,
        image_size=64, channels=3,
        sizes={"train": 1_281_167, "validation": 50_000, "test": 100_000}, verified=False,
        note="as imagenet32 at 64x64",
    ),
    _entry(
        name="places365", hub_id="Andron00e/Places365-custom", config=None, image="image",
        label="label", train_split="train", test_split=None, num_classes=365, image_size=256,
        channels=3, sizes={"train": 1_839_960}, verified=False,
        note="no official (downsampled) Places365 copy on the hub was found; this one shows "
        "~1.84M rows in a single train split (apparently Places365-Standard train+val, so the "
        "test split is drawn stratified); columns and resolution unconfirmed; images are resized "
        "to the suite's input size on load",
    ),
)
# fmt: on

#: name -> entry (read-only).
CATALOGUE: Mapping[str, CatalogueEntry] = MappingProxyType({e.name: e for e in _ENTRIES})


def list_catalogue() -> list[CatalogueEntry]:
    """Every catalogue entry, sorted by name."""
    return [CATALOGUE[n] for n in sorted(CATALOGUE)]


def get_entry(name: str) -> CatalogueEntry:
    """The entry ``name``; DatasetError with close matches and the known names otherwise."""
    if name in CATALOGUE:
        return CATALOGUE[name]
    close = difflib.get_close_matches(str(name), list(CATALOGUE), n=2)
    hint = f"did you mean {', '.join(repr('catalog:' + c) for c in close)}? " if close else ""
    raise DatasetError(
        f"dataset source 'catalog:{name}': unknown catalogue name; {hint}known: "
        f"{', '.join(sorted(CATALOGUE))}"
    )


def mirror_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    """The directories of ``$TRANSFER_BENCH_HF_MIRROR`` (``os.pathsep``-separated), in order."""
    value = (os.environ if env is None else env).get(MIRROR_ENV, "")
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]


def resolve(
    entry: CatalogueEntry, env: Mapping[str, str] | None = None
) -> tuple[str, str | None, bool]:
    """``(ref, config, is_local)`` to load ``entry`` from: a mirror copy if one exists, else the hub.

    In a mirror, ``<dir>/<owner__name>/<config>/`` is used as a plain parquet directory when it
    exists; otherwise ``<dir>/<owner__name>`` is loaded with the config name only if it carries a
    hub ``README.md`` (a snapshot, which declares its subsets), else as a plain directory.
    """
    for root in mirror_dirs(env):
        copy = root / entry.mirror_name
        if not copy.is_dir():
            continue
        if entry.config and (copy / entry.config).is_dir():
            return str(copy / entry.config), None, True
        has_card = (copy / "README.md").is_file()
        return str(copy), entry.config if has_card else None, True
    return entry.hub_id, entry.config, False


def mirror_note(ref: str, entry: CatalogueEntry, env: Mapping[str, str] | None = None) -> str:
    """What a mirror's ``README.md`` says about the copy of ``entry`` loaded from ``ref`` ("" if
    nothing): the lines naming the copy's folder, table pipes turned into "; ".

    Why: a local copy may differ from the hub's (image order, re-split, re-encoded images); the
    note travels with the dataset's provenance into config.json, tickets and reports.
    """
    for root in mirror_dirs(env):
        try:
            Path(ref).resolve().relative_to(root.resolve())
            text = (root / "README.md").read_text(encoding="utf-8", errors="replace")
        except (ValueError, OSError):
            continue
        lines = [ln.strip() for ln in text.splitlines() if entry.mirror_name in ln]
        cells = [
            "; ".join(c.strip() for c in ln.strip("|").split("|") if c.strip()) for ln in lines
        ]
        return " ".join(cells)[:1000]
    return ""


def catalogue_spec(name: str, *, use_mirror: bool = True, **fields: Any) -> DatasetSpec:
    """A validated ``hf:`` DatasetSpec for catalogue entry ``name`` (columns and splits filled in).

    ``fields`` override or extend the spec (``max_train=5000``, ``label="coarse_label"``, ...).
    With ``use_mirror`` a local copy under ``$TRANSFER_BENCH_HF_MIRROR`` is preferred.
    """
    entry = get_entry(name)
    ref, config, _ = resolve(entry) if use_mirror else (entry.hub_id, entry.config, False)
    values: dict[str, Any] = {
        "source": f"hf:{ref}" + (f":{config}" if config else ""),
        "image": entry.image,
        "label": entry.label,
        "train_split": entry.train_split,
        "test_split": entry.test_split,
    }
    values.update(fields)
    return DatasetSpec(**values)


def _unavailable(spec: DatasetSpec, entry: CatalogueEntry, err: HubUnavailableError) -> str:
    subset = f" config {entry.config!r}" if entry.config else ""
    args = f"'{entry.hub_id}'" + (f", '{entry.config}'" if entry.config else "")
    dirs = mirror_dirs()
    where = (
        f"{MIRROR_ENV} is set but none of its directories has {entry.mirror_name}/"
        if dirs
        else f"or set {MIRROR_ENV}=<dir> with a local copy in <dir>/{entry.mirror_name}/"
    )
    return (
        f"dataset {spec.source!r} (Hugging Face {entry.hub_id!r}{subset}) is not available "
        f"({err.reason}); fix: download it once while online with "
        f'`python -c "import datasets; datasets.load_dataset({args})"` (kept in '
        f"HF_DATASETS_CACHE and reused offline), {where} (parquet files named <split>-*.parquet "
        f"with columns {entry.image!r}, {entry.label!r}), or point `source` at a copy with "
        "hf:<local dir> or local:<file.parquet|file.npz>"
    )


@register_source("catalog", "<" + "|".join(sorted(CATALOGUE)) + ">")
def _catalog(spec: DatasetSpec, name: str) -> RawData:
    """Load catalogue entry ``name`` through the ``hf:`` loader (mirror copy or hub)."""
    entry = get_entry(name)
    defaults = {
        "image": entry.image,
        "label": entry.label,
        "train_split": entry.train_split,
        "test_split": entry.test_split,
    }
    update = {k: v for k, v in defaults.items() if k not in spec.model_fields_set}
    ref, config, local = resolve(entry)
    try:
        raw = load_hf(spec.model_copy(update=update), ref, config)
    except HubUnavailableError as err:
        raise DatasetError(_unavailable(spec, entry, err)) from None
    origin = {
        **raw.origin,
        "catalog": entry.name,
        "hub_id": entry.hub_id,
        "config": entry.config,
        "loaded_from": ref if local else "hub",
    }
    if local:
        origin["mirror_note"] = mirror_note(ref, entry)
    return RawData(
        raw.x_train, raw.y_train, raw.x_test, raw.y_test, origin=origin, class_names=raw.class_names
    )
