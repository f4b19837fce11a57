"""Ray executor: the same plan on a Ray cluster (or a local Ray on one machine).

Each run becomes one ``ray.remote`` task with its own resources (``num_cpus``, ``num_gpus``); a run
that depends on others receives their ObjectRefs as arguments, so Ray starts it only after they
finished. The task executes ``execute(ctx, [run])`` on the worker, exactly like the sequential and
pool executors, so file locks, skip-if-complete and resume are identical and results land in the
same store. For more than one node the results folder (and the dataset cache) must be on a
filesystem that every node mounts at the same path (NFS, Lustre, GPFS, ...).

Failures: a task that crashes (worker or node lost) or raises an unexpected exception is retried
``max_retries`` times. A ``TransferBenchError`` (bad input) is deterministic and is not retried; it
comes back as a value and is re-raised in the driver with the run key, keeping its class. Runs that
do not depend on a failed run still finish (so their results are kept); the first failure is raised
at the end.

Stopping: Ctrl-C or SIGTERM (``Terminated``) cancels every task of this run with
``ray.cancel(force=True)``, which kills the workers executing them. If the driver itself dies
(SIGKILL, OOM), Ray's ownership model cleans up: a task fate-shares with its owner, the driver, so
Ray cancels the driver's pending tasks and kills the workers running them once it notices the owner
is gone; a local Ray that ``ray.init()`` started for this run is shut down with the driver. This is
Ray's guarantee, not ours (we do not control Ray's workers, whose parent is the raylet); it is not
exercised by the test suite, which runs without Ray installed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transfer_bench.config import Suite
from transfer_bench.errors import TransferBenchError
from transfer_bench.runner.execute import ExecutionSummary
from transfer_bench.runner.outcomes import OnEvent, Outcomes, RunEvent, one_line
from transfer_bench.runner.pool import (
    WorkerSpec,
    available_cores,
    run_one,
    set_torch_threads,
    worker_spec,
)
from transfer_bench.runs.plan import Run

NO_RAY = "or run without Ray: --executor local"
RAY_MISSING = (
    "Ray is not installed (needed by --executor ray): pip install 'transfer-bench[ray]' "
    f"(or pip install ray), {NO_RAY}"
)


def import_ray() -> Any:
    """The ``ray`` module, or a one-line TransferBenchError saying how to install or repair it."""
    try:
        import ray
    except ImportError as e:
        if isinstance(e, ModuleNotFoundError) and e.name in (None, "ray"):
            raise TransferBenchError(RAY_MISSING) from None
        raise TransferBenchError(  # installed but broken (a missing dependency, a bad build)
            f"Ray is installed but cannot be imported ({one_line(e)}); repair it with "
            f"pip install --force-reinstall 'transfer-bench[ray]', {NO_RAY}"
        ) from None
    return ray


def _ray_task(spec: WorkerSpec, run: Run, threads: int, *deps: dict[str, Any]) -> dict[str, Any]:
    """Body of one Ray task: run ``run`` unless a dependency failed.

    ``deps`` are the results of the runs it depends on (Ray resolved their ObjectRefs first).
    A TransferBenchError is returned, not raised, so that Ray does not retry it.
    """
    failed = [d["key"] for d in deps if d.get("error") is not None or d.get("blocked")]
    if failed:
        return {"key": run.key, "blocked": True, "error": None, "failed_deps": failed}
    set_torch_threads(threads)
    t0 = time.time()
    try:
        trained = run_one(spec, run)
    except TransferBenchError as e:
        return {"key": run.key, "error": e, "trained": False, "start": t0}
    return {"key": run.key, "error": None, "trained": trained, "start": t0, "end": time.time()}


def gpus_per_run(device: str, asked: float, cluster_gpus: float) -> float:
    """GPUs each Ray task reserves: ``asked`` if > 0; else 1 when the device is ``auto`` or
    ``cuda`` and the cluster has GPUs, since Ray hides GPUs from tasks that reserve none (they
    would train on the CPU without a word); else 0. A CUDA device on a cluster without GPUs is a
    one-line error."""
    base = device.partition(":")[0]
    if base == "cuda" and cluster_gpus <= 0:
        raise TransferBenchError(
            f"--device {device}: the Ray cluster reports no GPUs; start its nodes with GPUs "
            "(`ray start --num-gpus N`) or use --device cpu"
        )
    if asked > 0:
        if asked > cluster_gpus and base in ("auto", "cuda"):
            raise TransferBenchError(
                f"--gpus-per-run {asked:g}: the Ray cluster has {cluster_gpus:g} GPU(s); ask "
                "for at most that many"
            )
        return asked
    return 1.0 if base in ("auto", "cuda") and cluster_gpus > 0 else 0.0


def _connect(ray: Any, address: str | None, num_cpus: int | None) -> bool:
    """Connect to (or start) Ray; True if this call started it and must shut it down."""
    if ray.is_initialized():
        return False
    try:
        if address:
            ray.init(address=address, log_to_driver=True)
        else:
            ray.init(num_cpus=num_cpus or available_cores(), include_dashboard=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"--address {address}: cannot connect to Ray" if address else "cannot start Ray"
        hint = (
            "start a cluster with `ray start --head` and pass its address (or `auto` on a node "
            "of the cluster), or omit --address for a local Ray"
            if address
            else "check that Ray can start here (`ray start --head` shows why)"
        )
        raise TransferBenchError(f"{where} ({one_line(e)}); {hint}") from None
    return True


def execute_ray(
    suite_path_or_suite: str | Path | Suite | Mapping[str, Any],
    suite_dir: str | Path,
    runs: list[Run],
    *,
    address: str | None = None,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    num_cpus_per_run: float = 1,
    num_gpus_per_run: float = 0,
    max_retries: int = 2,
    num_cpus: int | None = None,
    on_event: OnEvent | None = None,
) -> ExecutionSummary:
    """Execute ``runs`` as Ray tasks, each after the runs it depends on.

    ``address``: None starts a local Ray with ``num_cpus`` CPUs (default: the cores available);
    ``"auto"`` or ``"HOST:PORT"`` joins a running cluster (``ray start --head``). If Ray is already
    initialized in this process, that instance is used and left running. Each run reserves
    ``num_cpus_per_run`` CPUs (its torch thread count) and ``num_gpus_per_run`` GPUs (fractions
    pack several runs on one GPU; 0 = one GPU per run when the device is ``auto`` or ``cuda`` and
    the cluster has GPUs, see ``gpus_per_run``). Returns what was trained and skipped, like
    ``execute``.
    """
    t_start = time.perf_counter()
    emit = on_event or (lambda e: None)
    ray = import_ray()
    if num_cpus_per_run <= 0 or num_gpus_per_run < 0 or max_retries < 0:
        raise TransferBenchError(
            f"Ray resources: cpus per run {num_cpus_per_run}, gpus per run {num_gpus_per_run}, "
            f"retries {max_retries}; use cpus > 0, gpus >= 0 and retries >= 0"
        )
    worker_device = "cuda" if device.startswith("cuda") else device  # a task sees its GPUs only
    spec = worker_spec(suite_path_or_suite, suite_dir, worker_device, cache_dir)
    outcomes = Outcomes(emit)
    todo = outcomes.to_compute(runs, Path(spec.suite_dir))
    if not todo:
        outcomes.summary.seconds = time.perf_counter() - t_start
        return outcomes.summary

    owns = _connect(ray, address, num_cpus)
    try:
        cluster_gpus = float(ray.cluster_resources().get("GPU", 0))
        asked = num_gpus_per_run
        num_gpus_per_run = gpus_per_run(device, asked, cluster_gpus)
    except BaseException:
        if owns:
            ray.shutdown()
        raise
    if num_gpus_per_run != asked:
        emit(
            RunEvent(
                "info",
                "",
                message=f"the Ray cluster has {cluster_gpus:g} GPU(s): each run reserves "
                f"{num_gpus_per_run:g} (--gpus-per-run to change)",
            )
        )
    threads = max(1, int(num_cpus_per_run))
    task = ray.remote(_ray_task)
    by_key = {r.key: r for r in todo}
    refs: dict[str, Any] = {}
    try:
        remaining = list(todo)
        while remaining:  # submit in dependency order; plan() already is, this also accepts others
            progress = False
            for r in list(remaining):
                deps = [d for d in r.depends_on if d in by_key]
                if all(d in refs for d in deps):
                    refs[r.key] = task.options(
                        num_cpus=num_cpus_per_run,
                        num_gpus=num_gpus_per_run,
                        max_retries=max_retries,
                        retry_exceptions=True,
                        name=f"transfer-bench {r.key}",
                    ).remote(spec, r, threads, *(refs[d] for d in deps))
                    emit(RunEvent("queued", r.key, r.label()))
                    remaining.remove(r)
                    progress = True
            if not progress:
                raise TransferBenchError(
                    "runs " + ", ".join(r.key for r in remaining) + " wait on each other; "
                    "their depends_on form a cycle"
                )
        key_of = {ref: key for key, ref in refs.items()}
        outstanding = list(refs.values())
        while outstanding:
            ready, outstanding = ray.wait(outstanding, num_returns=1, timeout=1.0)
            for ref in ready:
                r = by_key[key_of[ref]]
                try:
                    out = ray.get(ref)
                except Exception as e:  # retries exhausted: unwrap Ray's wrapper
                    outcomes.fail(r, getattr(e, "cause", None) or e, wrapper=e)
                    continue
                if out.get("blocked"):
                    emit(
                        RunEvent(
                            "error",
                            r.key,
                            r.label(),
                            message="not run: " + ", ".join(out["failed_deps"]) + " failed",
                        )
                    )
                    continue
                if out["error"] is not None:
                    outcomes.fail(r, out["error"])
                    continue
                outcomes.finish(r, out["trained"], out["start"])
        if outcomes.failure is not None:
            raise outcomes.failure
    except KeyboardInterrupt:
        for ref in refs.values():  # finished levels are saved; the rest resumes next time
            try:
                ray.cancel(ref, force=True)
            except Exception:  # already finished or gone
                pass
        raise
    finally:
        if owns:
            ray.shutdown()
    outcomes.summary.seconds = time.perf_counter() - t_start
    return outcomes.summary
