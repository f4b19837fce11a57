"""Disk and environment faults: one-line errors, no tracebacks, finished results kept.

Covers an unwritable results folder, a full disk during an atomic write (unit and end to end with
a resume), a damaged dataset cache, a missing Ray and an unreadable local .npz dataset.
"""

from __future__ import annotations

import errno
import io
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from transfer_bench import fileio
from transfer_bench.cli import main
from transfer_bench.config import DatasetSpec, InputSpec
from transfer_bench.data import cache, load_dataset
from transfer_bench.data.dataset import dataset_key
from transfer_bench.errors import DatasetError, TransferBenchError
from transfer_bench.fileio import FileWriteError, atomic_write_json, atomic_write_with
from transfer_bench.runner.ray_executor import import_ray

pytestmark = pytest.mark.reliability

DIGITS = {"source": "builtin:digits", "max_train": 300, "max_test": 100}
SUITE = {  # quickstart in miniature: a few seconds end to end
    "name": "tinyfault",
    "seeds": [0],
    "model": {"name": "lenet_300_100"},
    "input": {"size": 8, "channels": 1},
    "datasets": {"digits": DIGITS},
    "train": {"batch_size": 50, "epochs": 1},
    "search": {"sources": ["digits"], "rate": 0.5, "head_rate": 0.2, "levels": 2},
    "transfer": {"targets": ["digits"], "controls": ["dense"], "levels": [0, 2]},
}
GRAY8 = InputSpec(size=8, channels=1)
DISK_FULL = "free space and rerun the same command to resume"


def write_suite(tmp: Path, data: dict | None = None) -> Path:
    path = tmp / "suite.yaml"
    path.write_text(yaml.safe_dump(data or SUITE))
    return path


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args) -> tuple:
    """``transfer-bench ARGS`` in this process through ``main`` -> (exit code, stdout, stderr)."""
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["transfer-bench", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err


def error_line(err: str) -> str:
    """The single ``error: ...`` line of stderr (fails on tracebacks or several lines)."""
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def fd_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


# ----------------------------------------------------------------- 1. unwritable results folder


def deny_writes_under(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Make creating folders or files below ``root`` fail as chmod 0o500 would for non-root."""
    real_mkdir, real_open = os.mkdir, os.open
    root_s = str(root)

    def below(path) -> bool:
        return os.path.abspath(os.fspath(path)).startswith(root_s + os.sep)

    def denied(path) -> PermissionError:
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))

    def mkdir(path, mode=0o777, *, dir_fd=None):
        if below(path):
            raise denied(path)
        return real_mkdir(path, mode, dir_fd=dir_fd)

    def open_(path, flags, mode=0o777, *, dir_fd=None):
        if below(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise denied(path)
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)


def test_unwritable_results_folder_is_one_line(tmp_path, monkeypatch, capsys):
    suite = write_suite(tmp_path)
    ro = tmp_path / "readonly"
    ro.mkdir()
    ro.chmod(0o500)
    if os.geteuid() == 0:  # root ignores permissions: simulate what the kernel would refuse
        deny_writes_under(monkeypatch, ro)
    try:
        code, _, err = run_cli(
            monkeypatch, capsys, "run", suite, "--results", ro,
            "--cache-dir", tmp_path / "cache", "--no-report",
        )  # fmt: skip
    finally:
        ro.chmod(0o700)
    line = error_line(err)
    assert code == 2
    assert str(ro) in line and "cannot write" in line and "Permission denied" in line
    assert "choose a writable --results" in line
    assert list(ro.iterdir()) == []


# ----------------------------------------------------------------- 2. disk full (unit)


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_keeps_previous_version_and_removes_temp(tmp_path, monkeypatch):
    target = tmp_path / "result.json"
    atomic_write_json(target, {"version": 1})
    monkeypatch.setattr(os, "fsync", enospc)
    with pytest.raises(FileWriteError) as info:
        atomic_write_json(target, {"version": 2})
    msg = str(info.value)
    assert isinstance(info.value, TransferBenchError) and "\n" not in msg
    assert msg.startswith(f"{target}: cannot write, disk full (No space left on device)")
    assert msg.endswith(DISK_FULL)
    assert info.value.errno == errno.ENOSPC and info.value.path == str(target)
    assert json.loads(target.read_text()) == {"version": 1}
    assert list(tmp_path.iterdir()) == [target]  # no temp file left


def test_report_sweep_waits_for_a_plan_writer_of_another_run(tmp_path, monkeypatch):
    """Two ``run`` commands on one folder: one writes plan.json while the other's report removes
    stale temp files there. The sweep must wait for the writer, not take its temp file away (CI
    once lost a plan.json that way: ``cannot write, No such file or directory``)."""
    import threading

    from transfer_bench.analysis.report import write_report
    from transfer_bench.api import save_plan

    class Run:  # what save_plan reads of a planned run
        run_id = "imp_a"

    mid_write, go_on = threading.Event(), threading.Event()
    real_on_write = fileio.faults.on_write

    def pause_in_plan_write(path: Path) -> None:
        if path.name == "plan.json" and not mid_write.is_set():
            mid_write.set()  # the temp file is complete and not yet renamed
            assert go_on.wait(30)
        real_on_write(path)

    monkeypatch.setattr(fileio.faults, "on_write", pause_in_plan_write)
    errors: list[BaseException] = []

    def guarded(fn):
        def call():
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - handed to the test thread
                errors.append(e)

        return call

    writer = threading.Thread(target=guarded(lambda: save_plan(tmp_path, [Run()])))
    writer.start()
    assert mid_write.wait(30)
    assert [p.name.startswith(".plan.json.") for p in tmp_path.glob(".*.tmp")] == [True]
    reporter = threading.Thread(target=guarded(lambda: write_report(tmp_path, suite_name="x")))
    reporter.start()
    reporter.join(0.5)
    assert reporter.is_alive()  # waits for the writer's lock
    assert list(tmp_path.glob(".*.tmp"))  # and has swept nothing
    go_on.set()
    writer.join(30)
    reporter.join(60)
    assert not errors, errors
    assert json.loads((tmp_path / "plan.json").read_text()) == {"run_ids": ["imp_a"]}
    assert (tmp_path / "report.md").is_file() and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (errno.ENOSPC, "disk full (No space left on device); " + DISK_FULL),
        (errno.EDQUOT, "disk quota exceeded (Disk quota exceeded); free space (or raise"),
        (errno.EACCES, "no permission (Permission denied); make the folder writable or choose"),
        (errno.EPERM, "no permission (Operation not permitted); make the folder writable"),
        (errno.EROFS, "read-only file system (Read-only file system); choose a writable --results"),
        (errno.EIO, "Input/output error; check"),
    ],
)
def test_write_errors_become_one_line(tmp_path, code, expected):
    target = tmp_path / "sub" / "ticket.ticket"

    def write(tmp: str) -> None:
        Path(tmp).write_bytes(b"partial")
        raise OSError(code, os.strerror(code))

    with pytest.raises(FileWriteError) as info:
        atomic_write_with(target, write)
    msg = str(info.value)
    assert msg.startswith(f"{target}: cannot write, {expected}") and "\n" not in msg
    assert info.value.errno == code
    assert list((tmp_path / "sub").iterdir()) == []


def test_serializer_errors_are_recognised(tmp_path, monkeypatch):
    target = tmp_path / "trained.safetensors"

    def rust_style(tmp: str) -> None:  # how safetensors reports a failed write
        raise RuntimeError("Error while serializing: I/O error: No space left (os error 28)")

    with pytest.raises(FileWriteError, match=r"trained\.safetensors: cannot write, disk full"):
        atomic_write_with(target, rust_style)

    def opaque(tmp: str) -> None:  # torch.save says nothing about the cause
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576")

    monkeypatch.setattr(fileio, "_disk_full", lambda folder: True)
    with pytest.raises(FileWriteError, match=DISK_FULL):
        atomic_write_with(target, opaque)
    monkeypatch.setattr(fileio, "_disk_full", lambda folder: False)
    with pytest.raises(RuntimeError, match="unexpected pos"):  # a bug is not a disk fault
        atomic_write_with(target, opaque)
    for exc in (ValueError("bug"), KeyboardInterrupt()):

        def fail(tmp: str, exc: BaseException = exc) -> None:
            raise exc

        with pytest.raises(type(exc)):
            atomic_write_with(target, fail)
    assert list(tmp_path.iterdir()) == []


def test_dataset_cache_tolerates_a_full_disk(tmp_path, monkeypatch):
    spec = DatasetSpec(**DIGITS)
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", enospc)
        with pytest.warns(UserWarning, match=r"not written \(No space left on device\); continu"):
            ds = load_dataset(spec, GRAY8, split_seed=0, cache_dir=tmp_path)
    assert ds.x_train.shape == (300, 1, 8, 8)
    assert list(tmp_path.iterdir()) == []
    taken = tmp_path / "dataset-x.safetensors"
    taken.mkdir()  # the cache file's place is taken by a folder: warn, keep going
    tensors = {n: torch.zeros(1) for n in cache.TENSOR_NAMES}
    with pytest.warns(UserWarning, match=r"dataset cache .* not written \(Is a directory\)"):
        assert not cache.save(taken, "k", tensors, {})
    assert taken.is_dir() and list(tmp_path.iterdir()) == [taken]


# ----------------------------------------------------------------- 2. disk full (end to end)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name fsync'd files")
def test_disk_full_mid_run_then_resume_keeps_finished_levels(tmp_path, monkeypatch, capsys):
    suite = write_suite(tmp_path)
    res = tmp_path / "res"
    args = ("run", suite, "--results", res, "--cache-dir", tmp_path / "cache", "--no-report")
    real_fsync = os.fsync
    written: list[str] = []

    def fsync(fd: int) -> None:  # every atomic write fsyncs its temp file exactly once
        name = fd_path(fd)
        written.append(name)
        if fault and Path(name).name.startswith(".result.json.") and "level_1" in name:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    fault = True
    code, _, err = run_cli(monkeypatch, capsys, *args)
    line = error_line(err)
    assert code == 2
    search = next((res / "tinyfault").glob("search-*/seed_0"))
    assert f"{search / 'level_1' / 'result.json'}: cannot write, disk full" in line
    assert line.endswith(DISK_FULL)
    assert not [p for p in files_under(res) if p.name.endswith(".tmp")]
    assert (search / "level_0" / "result.json").is_file()
    assert not (search / "level_1" / "result.json").exists() and not (search / "DONE.json").exists()
    kept = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files_under(search / "level_0")}

    fault = False
    written.clear()
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0 and "Traceback" not in err, err
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in kept} == kept
    assert not [w for w in written if f"{os.sep}level_0{os.sep}" in w and str(search) in w]
    done = json.loads((search / "DONE.json").read_text())
    assert done["levels"] == [0, 1, 2]
    results = sorted(p.relative_to(res) for p in res.rglob("result.json"))
    assert len(results) == 3 + 2 + 1  # search levels 0-2, ticket at levels 0 and 2, dense


# ----------------------------------------------------------------- 3. damaged dataset cache


@pytest.mark.parametrize("damage", ["flip_middle", "truncate", "garbage", "empty"])
def test_damaged_cache_is_detected_and_rebuilt(tmp_path, damage):
    spec = DatasetSpec(**DIGITS)
    first = load_dataset(spec, GRAY8, split_seed=0, cache_dir=tmp_path)
    key = dataset_key(spec, GRAY8, 0)
    path = cache.cache_path(tmp_path, key)
    assert list(tmp_path.iterdir()) == [path]
    data = bytearray(path.read_bytes())
    if damage == "flip_middle":
        mid = len(data) // 2
        data[mid : mid + 8] = bytes(b ^ 0xFF for b in data[mid : mid + 8])
    elif damage == "truncate":
        data = data[: len(data) * 2 // 3]
    elif damage == "garbage":
        data = bytearray(np.random.default_rng(0).bytes(len(data)))
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    match = "checksum mismatch" if damage == "flip_middle" else "is damaged"
    with pytest.warns(UserWarning, match=match):
        again = load_dataset(spec, GRAY8, split_seed=0, cache_dir=tmp_path)
    for name in cache.TENSOR_NAMES:
        assert torch.equal(getattr(first, name), getattr(again, name))
    assert (again.mean, again.std, again.info) == (first.mean, first.std, first.info)
    assert cache.load(path, key) is not None  # rebuilt and valid again
    assert list(tmp_path.iterdir()) == [path]


# ----------------------------------------------------------------- 4. Ray missing


def test_missing_ray_from_the_cli_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    suite = write_suite(tmp_path)
    res = tmp_path / "res"
    code, _, err = run_cli(
        monkeypatch, capsys, "run", suite, "--executor", "ray", "--results", res, "--no-report"
    )
    line = error_line(err)
    assert code == 2
    assert "Ray is not installed" in line and "pip install 'transfer-bench[ray]'" in line
    assert "pip install ray" in line and "--executor local" in line
    assert not list(res.rglob("result.json"))


def test_broken_ray_install_is_one_line(monkeypatch):
    real_import = __import__

    def fake_import(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("libray.so: cannot open shared object file")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "ray", raising=False)
    monkeypatch.setattr("builtins.__import__", fake_import)
    with pytest.raises(TransferBenchError) as info:
        import_ray()
    msg = str(info.value)
    assert msg.startswith("Ray is installed but cannot be imported (libray.so: cannot open")
    assert "--force-reinstall" in msg and "--executor local" in msg and "\n" not in msg


# ----------------------------------------------------------------- 5. unreadable local dataset


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _damaged_npz(kind: str) -> bytes:
    good = _npz_bytes(x=np.zeros((20, 8, 8), np.uint8), y=np.arange(20) % 2)
    if kind == "garbage":
        return np.random.default_rng(1).bytes(600)
    if kind == "empty":
        return b""
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "flipped":
        data = bytearray(good)
        data[len(data) // 3] ^= 0xFF
        return bytes(data)
    buf = io.BytesIO()  # a zip whose members are not .npy arrays
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x.npy", b"not an array")
        z.writestr("y.npy", b"nor this")
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["garbage", "empty", "truncated", "flipped", "not_npy"])
def test_unreadable_local_npz_is_one_line(tmp_path, kind):
    path = tmp_path / "data.npz"
    path.write_bytes(_damaged_npz(kind))
    with pytest.raises(DatasetError) as info:
        load_dataset(DatasetSpec(source=f"local:{path}"), GRAY8, split_seed=0, cache_dir=None)
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg and "allow_pickle" not in msg
    assert "numpy.savez" in msg


def test_unreadable_local_npz_from_the_cli(tmp_path, monkeypatch, capsys):
    path = tmp_path / "data.npz"
    path.write_bytes(_damaged_npz("garbage"))
    data = yaml.safe_load(yaml.safe_dump(SUITE))
    data["datasets"] = {"digits": {"source": f"local:{path}"}}
    suite = write_suite(tmp_path, data)
    code, _, err = run_cli(
        monkeypatch, capsys, "run", suite, "--results", tmp_path / "res",
        "--cache-dir", tmp_path / "cache", "--no-report",
    )  # fmt: skip
    line = error_line(err)
    assert code == 2 and str(path) in line and "not a .npz archive" in line


def test_plan_names_the_reason_and_fails(tmp_path, monkeypatch, capsys):
    path = tmp_path / "data.npz"
    np.savez(path, images=np.zeros((20, 8, 8), np.uint8), labels=np.arange(20) % 2)
    data = yaml.safe_load(yaml.safe_dump(SUITE))
    data["datasets"] = {"digits": {"source": f"local:{path}"}}
    suite = write_suite(tmp_path, data)
    monkeypatch.setenv("TRANSFER_BENCH_CACHE", str(tmp_path / "cache"))
    code, out, err = run_cli(monkeypatch, capsys, "plan", suite, "--results", tmp_path / "r")
    assert code == 2 and "budget:" in out  # the whole plan is printed, then the error
    reason = next(ln for ln in err.splitlines() if ln.startswith("digits: not available here"))
    assert "['images', 'labels']" in reason and "image:" in reason  # the cause and the fix
    assert err.strip().splitlines()[-1].startswith("error: datasets.digits: ")
    # named in the spec, the same file plans cleanly (with 3 seeds, also strict)
    data["seeds"] = [0, 1, 2]
    data["datasets"]["digits"].update(image="images", label="labels")
    suite = write_suite(tmp_path, data)
    code, _, err = run_cli(
        monkeypatch, capsys, "plan", suite, "--results", tmp_path / "r", "--strict"
    )
    assert code == 0 and "not available" not in err
