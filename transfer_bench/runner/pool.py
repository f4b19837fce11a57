"""Local parallel executor: independent runs in N worker processes, dependencies respected.

Each worker is a fresh process that builds its own ``Context`` from picklable inputs and executes
one run at a time through ``execute(ctx, [run])``, so locking, skip-if-complete and resume behave
exactly as in the sequential executor. Workers are forked from a fork server that has imported
torch and the stages once (:mod:`transfer_bench.runner.processes`).

A run is submitted only once every run it depends on is complete (on disk before we started, or
finished by this invocation), and never more runs are in flight than there are workers.

Threads: each worker uses ``max(1, cores // workers)`` torch threads, so the pool never runs more
threads than cores (perf-lab section 6: two 1-thread processes beat one 2-thread process by ~1.6x
for LeNet-sized jobs; oversubscription is 2.4-2.9x slower). Results are bit-identical to the
sequential executor's when it runs with the same thread count; across thread counts float sums may
differ in the last bits.
"""

from __future__ import annotations

import functools
import json
import os
import queue as queue_mod
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing.managers import SyncManager
from pathlib import Path
from typing import Any

from transfer_bench.config import Suite, load_suite, parse_suite
from transfer_bench.devices import gpu_slots, visible_gpus
from transfer_bench.errors import TransferBenchError
from transfer_bench.runner.execute import ExecutionSummary, execute
from transfer_bench.runner.outcomes import OnEvent, Outcomes, RunEvent
from transfer_bench.runner.processes import process_context, sigint_blocked
from transfer_bench.runs.context import Context, resolve_device
from transfer_bench.runs.plan import Run, suite_hash
from transfer_bench.runs.store import RunDir


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to rebuild the parent's ``Context``; picklable and hashable.

    ``suite`` is a suite YAML path or the validated suite as canonical JSON (``suite_is_path``).
    Paths are absolute, because a worker's working directory may differ (Ray).
    """

    suite: str
    suite_is_path: bool
    suite_dir: str
    device: str
    cache_dir: str | None


def worker_spec(
    suite_path_or_suite: str | Path | Suite | Mapping[str, Any],
    suite_dir: str | Path,
    device: str,
    cache_dir: str | Path | None,
) -> WorkerSpec:
    """The picklable description of an execution context (validates the suite once, here)."""
    if isinstance(suite_path_or_suite, (str, Path)):
        path = Path(suite_path_or_suite).expanduser().resolve()
        load_suite(path)  # a bad suite fails here, in the parent, as one line
        suite, is_path = str(path), True
    else:
        s = (
            suite_path_or_suite
            if isinstance(suite_path_or_suite, Suite)
            else parse_suite(dict(suite_path_or_suite))
        )
        suite, is_path = (
            json.dumps(s.model_dump(mode="json", exclude_unset=True), sort_keys=True),
            False,
        )
    return WorkerSpec(
        suite=suite,
        suite_is_path=is_path,
        suite_dir=str(Path(suite_dir).expanduser().resolve()),
        device=device,
        cache_dir=str(Path(cache_dir).expanduser().resolve()) if cache_dir is not None else None,
    )


@functools.lru_cache(maxsize=2)
def worker_context(spec: WorkerSpec) -> Context:
    """The worker process's Context, built once per process so datasets load once per worker."""
    suite = load_suite(spec.suite) if spec.suite_is_path else parse_suite(json.loads(spec.suite))
    return Context(
        suite=suite,
        suite_dir=Path(spec.suite_dir),
        device=resolve_device(spec.device),
        cache_dir=Path(spec.cache_dir) if spec.cache_dir is not None else None,
        suite_hash=suite_hash(suite),
    )


def run_one(spec: WorkerSpec, run: Run, on_status: Callable[[str], None] | None = None) -> bool:
    """Execute one run in this process via ``execute``; True if it trained anything."""
    summary = execute(worker_context(spec), [run], on_status=on_status)
    return bool(summary.trained)


def available_cores() -> int:
    """CPU cores this process may use (affinity mask, e.g. under SLURM or taskset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def set_torch_threads(threads: int) -> None:
    """Limit torch (and OpenMP/MKL below it) to ``threads`` intra-op threads in this process."""
    import torch

    torch.set_num_threads(max(1, threads))


def _ignore_sigint() -> None:
    """Ctrl-C goes to the whole process group; the parent alone decides what to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def die_with_parent(parent: int, poll_seconds: float = 1.0) -> None:
    """Make this (child) process exit as soon as its parent dies, for any reason (SIGKILL too).

    A pool worker whose run was killed must not go on training and writing results, nor sit
    re-parented to init holding memory (or a GPU). ``parent`` is the pid of the process that asked
    for this one. Linux: the kernel sends SIGKILL when the direct parent exits
    (``prctl(PR_SET_PDEATHSIG)``); everywhere, a daemon thread also checks every ``poll_seconds``
    whether the direct parent changed (re-parented) or ``parent`` is gone, and exits then. A worker
    forked by the fork server has the server as its direct parent; the server exits when
    ``parent`` does. A parent that died during start-up counts too. Files are written atomically
    (temporary file, then rename), so a killed worker leaves at most a ``.tmp`` that the next run
    removes.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass  # the watcher below still works
    direct = os.getppid()
    if direct == 1 or (direct != parent and not _alive(parent)):  # died before the request
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(poll_seconds)
            if os.getppid() != direct or (direct != parent and not _alive(parent)):
                os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def _init_helper(parent: int) -> None:
    """Initializer of the pool's helper processes (the event-queue manager)."""
    _ignore_sigint()
    die_with_parent(parent)


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:  # removed under us
        return ""


def _init_worker(
    threads: int, parent: int, environ: dict[str, str], cwd: str, gpu_queue: Any = None
) -> None:
    """Pool-process initializer: die with the parent, take its environment and working directory
    (a forked worker would otherwise have the fork server's), set the thread count, and with
    ``gpu_queue`` (a queue of ``CUDA_VISIBLE_DEVICES`` values) take one GPU for this worker's
    life, before anything in it starts CUDA."""
    _init_helper(parent)
    os.environ.clear()
    os.environ.update(environ)
    if gpu_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu_queue.get(timeout=60)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    try:
        os.chdir(cwd)
    except OSError:
        pass  # paths the workers use are absolute (WorkerSpec)
    set_torch_threads(threads)


def _pool_task(spec: WorkerSpec, run: Run, events: Any) -> tuple[bool, float]:
    """Run in a pool process: report start and status lines to the parent, return (trained, t0).

    ``events`` is a Manager queue proxy; its ``put`` is synchronous, so the start line reaches the
    parent before the result does.
    """
    t0 = time.time()
    events.put(("start", run.key, "", t0))
    trained = run_one(spec, run, lambda s: events.put(("status", run.key, s, time.time())))
    return trained, t0


def check_workers(
    workers: int | None, todo: int, cores: int, emit: OnEvent, gpu_slots: int | None = None
) -> int:
    """Validated worker count: default cores (GPU workers: one per GPU slot), at most the number
    of runs to compute, and never more GPU workers than slots."""
    if workers is None:
        workers = cores if gpu_slots is None else gpu_slots
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise TransferBenchError(f"--workers {workers!r}: use a whole number >= 1")
    if gpu_slots is not None:
        if workers > gpu_slots:
            emit(
                RunEvent(
                    "warning",
                    "",
                    message=f"{workers} workers but {gpu_slots} GPU slot(s) (GPUs x "
                    f"--runs-per-gpu): running {gpu_slots}",
                )
            )
        return max(1, min(workers, gpu_slots, todo))
    if workers > cores and todo > cores:
        emit(
            RunEvent(
                "warning",
                "",
                message=f"{workers} workers on {cores} cores oversubscribe the CPU "
                f"(each uses 1 thread); --workers {cores} is usually faster on CPU",
            )
        )
    return max(1, min(workers, todo))


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """Stop the pool's processes now (interrupt): finished levels are saved; resume later."""
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        if proc.is_alive():
            proc.terminate()


def execute_pool(
    suite_path_or_suite: str | Path | Suite | Mapping[str, Any],
    suite_dir: str | Path,
    runs: list[Run],
    *,
    workers: int | None = None,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    on_event: OnEvent | None = None,
    runs_per_gpu: int = 1,
    gpus: list[str] | None = None,
) -> ExecutionSummary:
    """Execute ``runs`` in up to ``workers`` local processes, each run after its dependencies.

    Dependencies outside ``runs`` are not waited for (as in ``execute``). On the first failure no
    new run is started; runs already running finish, then the failure is raised with its run key
    (a ``TransferBenchError`` keeps its class and stays one line).

    On GPUs (``device`` ``auto`` or ``cuda`` where GPUs are visible; ``gpus`` overrides which, as
    ``CUDA_VISIBLE_DEVICES`` entries) each worker is pinned to one GPU for its life, round-robin,
    ``runs_per_gpu`` workers per GPU, and there are no more workers than that; each sees its GPU as
    ``cuda:0``. Without GPUs workers are 1-thread CPU processes, one per core by default.
    """
    t_start = time.perf_counter()
    emit = on_event or (lambda e: None)
    cores = available_cores()
    slots = gpu_slots(device, visible_gpus() if gpus is None else list(gpus), runs_per_gpu)
    n_slots = len(slots) if slots is not None else None
    check_workers(workers, 1, cores, lambda e: None, n_slots)  # bad --workers fails first
    if slots is not None and device.startswith("cuda"):
        device = "cuda"  # each worker sees only its own GPU, as cuda:0
    spec = worker_spec(suite_path_or_suite, suite_dir, device, cache_dir)
    sdir = Path(spec.suite_dir)
    out = Outcomes(emit)
    keys = {r.key for r in runs}
    pending = out.to_compute(runs, sdir)
    if not pending:
        out.summary.seconds = time.perf_counter() - t_start
        return out.summary

    workers = check_workers(workers, len(pending), cores, emit, n_slots)
    threads = max(1, cores // workers)
    ctx = process_context()
    by_key = {r.key: r for r in pending}
    running: dict[Future, Run] = {}
    stopped: list[Run] = []

    def drain(events: Any) -> None:
        while True:
            try:
                kind, key, msg, t = events.get_nowait()
            except (queue_mod.Empty, OSError, EOFError):
                return
            if key not in by_key or key in out.done:
                continue  # late line of a finished run
            if kind == "start":
                out.start(by_key[key], t)
            else:
                emit(RunEvent("status", key, by_key[key].label(), message=msg, time=t))

    def ready(r: Run) -> bool:
        return all(d in out.done or d not in keys for d in r.depends_on)

    manager = SyncManager(ctx=ctx)
    with sigint_blocked():
        manager.start(_init_helper, (os.getpid(),))
    try:
        events = manager.Queue()
        gpu_queue = None
        if slots is not None:
            gpu_queue = manager.Queue()
            for gpu in slots[:workers]:
                gpu_queue.put(gpu)
            emit(
                RunEvent(
                    "info",
                    "",
                    message=f"{workers} worker(s) on GPU(s) {', '.join(slots[:workers])} "
                    "(CUDA_VISIBLE_DEVICES per worker)",
                )
            )
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(threads, os.getpid(), dict(os.environ), _cwd(), gpu_queue),
        )
        try:
            while pending or running:
                while out.failure is None and len(running) < workers:
                    nxt = next((r for r in pending if ready(r)), None)
                    if nxt is None:
                        break
                    pending.remove(nxt)
                    with sigint_blocked():  # submit may start a worker process
                        running[pool.submit(_pool_task, spec, nxt, events)] = nxt
                if not running:
                    if out.failure is None and pending:  # cannot happen with plan(): no cycles
                        raise TransferBenchError(
                            "runs " + ", ".join(r.key for r in pending) + " wait on each other; "
                            "their depends_on form a cycle"
                        )
                    break  # after a failure: start nothing new
                finished, _ = wait(list(running), timeout=0.1, return_when=FIRST_COMPLETED)
                drain(events)
                for fut in finished:
                    r = running.pop(fut)
                    try:
                        trained, t0 = fut.result()
                    except Exception as e:  # reported with the run key once the others end
                        out.fail(r, e)
                        continue
                    out.finish(r, trained, t0)
        except BaseException:  # Ctrl-C or a failing callback: stop now, finished levels are kept
            _kill_workers(pool)
            stopped = list(running.values())
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            for r in stopped:  # the workers are gone: remove what they were half-way writing
                RunDir(r.folder(sdir)).tidy()
    finally:
        manager.shutdown()
    if out.failure is not None:
        raise out.failure
    out.summary.seconds = time.perf_counter() - t_start
    return out.summary
