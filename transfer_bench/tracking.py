"""Experiment tracking: every finished training logged to TensorBoard, MLflow or Weights & Biases.

Trackers listen to ``progress.TrainingWatcher``: after a training finishes, the parent process
reads what the run wrote (``result.json`` with its per-epoch ``history``) and logs one tracker run
per training (run, seed and level) with its parameters and its metrics at step = epoch. Nothing
hooks into the training loop, so the sequential, pool and Ray executors are tracked alike.
Grouping is by suite: a TensorBoard folder per suite, an MLflow experiment named after the suite,
a wandb ``group``. All three work offline (event files; MLflow's file store ``mlruns/``; wandb's
offline mode). Tracker libraries are optional (``pip install -e ".[track]"``) and imported only
when their tracker is opened.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from transfer_bench.config import TrackerName
from transfer_bench.errors import TransferBenchError
from transfer_bench.progress import Counts, Training

#: Tracker names (the suite schema's ``track:`` accepts the same).
TRACKERS: tuple[str, ...] = get_args(TrackerName)

#: The run parameters logged with every training (missing ones are left out).
PARAM_FIELDS: tuple[str, ...] = (
    "suite",
    "kind",
    "run_id",
    "method",
    "source",
    "target",
    "control",
    "seed",
    "level",
    "density",
    "optimizer",
    "source_optimizer",
)

#: Result fields logged once per training, at the last epoch's step.
SUMMARY_FIELDS: tuple[str, ...] = (
    "test_accuracy",
    "best_test_accuracy",
    "final_train_loss",
    "final_test_loss",
    "early_stop_iteration",
    "iterations",
    "seconds",
)

_PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow-skinny", "wandb": "wandb"}


def parse_trackers(names: str | Iterable[str] | None) -> tuple[str, ...]:
    """Tracker names from a list or a comma-separated string, validated and without repeats."""
    if names is None:
        return ()
    items = [x for n in ([names] if isinstance(names, str) else names) for x in str(n).split(",")]
    out: list[str] = []
    for raw in items:
        name = str(raw).strip().lower()
        if not name:
            continue
        if name not in TRACKERS:
            raise TransferBenchError(
                f"--track {raw!r}: unknown tracker; use one or more of {', '.join(TRACKERS)} "
                "(comma-separated)"
            )
        if name not in out:
            out.append(name)
    return tuple(out)


def _import(tracker: str, module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise TransferBenchError(
            f"--track {tracker}: {_PACKAGES[tracker]} is not installed; install the trackers "
            f'with: pip install -e ".[track]" (or pip install {_PACKAGES[tracker]})'
        ) from None


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v)


@dataclass(frozen=True)
class Logged:
    """What one training logs: its name, parameters, per-step metrics and summary metrics."""

    suite: str
    name: str  # unique per training within the suite
    params: dict[str, Any]
    steps: list[tuple[int, dict[str, float]]]
    summary: dict[str, float]

    @property
    def last_step(self) -> int:
        return self.steps[-1][0] if self.steps else 0


def logged(t: Training, suite: str) -> Logged:
    """The values a tracker logs for training ``t``: parameters from its record, history entries
    at step = epoch (iteration where a history has no whole epochs), summary at the last step."""
    r = t.record
    params = {k: r[k] for k in PARAM_FIELDS if r.get(k) is not None}
    params.setdefault("suite", suite)
    if "/" in t.name:
        params["point"] = t.name.split("/", 1)[1]
    steps: list[tuple[int, dict[str, float]]] = []
    history = r.get("history") if isinstance(r.get("history"), list) else []
    for i, entry in enumerate(history):
        if not isinstance(entry, dict):
            continue
        epoch = entry.get("epoch")
        if isinstance(epoch, int) and not isinstance(epoch, bool):
            step = epoch
        elif isinstance(entry.get("iteration"), int):
            step = entry["iteration"]
        else:
            step = i + 1
        values = {
            k: x
            for k, v in entry.items()
            if k not in ("epoch", "iteration") and (x := _number(v)) is not None
        }
        if values:
            steps.append((step, values))
    summary = {k: x for k in SUMMARY_FIELDS if (x := _number(r.get(k))) is not None}
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", t.run.label()).strip("_")
    name = f"{label}__seed_{t.seed}__{t.name.replace('/', '__')}__{t.run.run_id}"
    return Logged(suite=suite, name=name, params=params, steps=steps, summary=summary)


class Tracker:
    """Base of the trackers: ``training`` logs one finished training, ``close`` flushes."""

    name = ""

    def __init__(self, suite: str, suite_dir: Path) -> None:
        self.suite = suite
        self.suite_dir = Path(suite_dir)
        self.seconds = 0.0  # time spent logging, reported by ``run``
        self.trainings = 0

    def log(self, entry: Logged) -> None:
        raise NotImplementedError

    def training(self, t: Training, counts: Counts) -> None:
        t0 = time.perf_counter()
        self.log(logged(t, self.suite))
        self.seconds += time.perf_counter() - t0
        self.trainings += 1

    def event(self, e: Any, counts: Counts) -> None:
        return None

    def close(self) -> None:
        return None

    def where(self) -> str:
        raise NotImplementedError


class TensorBoardTracker(Tracker):
    """Event files under ``<suite dir>/tracking/tensorboard/<suite>/<training>/`` (or below
    ``$TENSORBOARD_LOGDIR``): scalars at step = epoch, the parameters as hparams and as text."""

    name = "tensorboard"

    def __init__(self, suite: str, suite_dir: Path) -> None:
        super().__init__(suite, suite_dir)
        _import("tensorboard", "tensorboard")
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        self._writer_cls, self._hparams = SummaryWriter, hparams
        env = os.environ.get("TENSORBOARD_LOGDIR")
        root = Path(env) if env else self.suite_dir / "tracking" / "tensorboard"
        self.root = root / suite

    def log(self, entry: Logged) -> None:
        w = self._writer_cls(log_dir=str(self.root / entry.name))
        try:
            for step, values in entry.steps:
                for k, v in values.items():
                    w.add_scalar(k, v, step)
            for k, v in entry.summary.items():
                w.add_scalar(f"final/{k}", v, entry.last_step)
            params = {
                k: v if isinstance(v, int | float | str) else str(v)
                for k, v in entry.params.items()
            }
            exp, ssi, sei = self._hparams(
                params, {f"final/{k}": v for k, v in entry.summary.items()}
            )
            for s in (exp, ssi, sei):
                w.file_writer.add_summary(s)
            table = "\n".join(f"| {k} | {v} |" for k, v in entry.params.items())
            w.add_text("params", "| parameter | value |\n|---|---|\n" + table, 0)
        finally:
            w.close()

    def where(self) -> str:
        return f"tensorboard --logdir {self.root}"


class MlflowTracker(Tracker):
    """MLflow: experiment = suite name, one MLflow run per training (params, tags, metrics at
    step = epoch). Store: ``$MLFLOW_TRACKING_URI``, else the file store
    ``<suite dir>/tracking/mlruns``."""

    name = "mlflow"

    def __init__(self, suite: str, suite_dir: Path) -> None:
        super().__init__(suite, suite_dir)
        _import("mlflow", "mlflow")
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        self.uri = uri or (self.suite_dir / "tracking" / "mlruns").resolve().as_uri()
        # MLflow 3 refuses its file store unless this is set; the file store is what works
        # offline with mlflow-skinny and needs no database, so opt in for the default location.
        self._allow_file_store = uri is None and "MLFLOW_ALLOW_FILE_STORE" not in os.environ
        with self._file_store_allowed():
            self.client = MlflowClient(tracking_uri=self.uri)
            exp = self.client.get_experiment_by_name(suite)
            self.experiment_id = (
                exp.experiment_id if exp is not None else self.client.create_experiment(suite)
            )

    def _file_store_allowed(self):
        from contextlib import contextmanager

        @contextmanager
        def scope():
            if not self._allow_file_store:
                yield
                return
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
            try:
                yield
            finally:
                os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)

        return scope()

    def log(self, entry: Logged) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        metrics = [
            Metric(k, v, now, step) for step, values in entry.steps for k, v in values.items()
        ]
        metrics += [Metric(f"final_{k}", v, now, entry.last_step) for k, v in entry.summary.items()]
        params = [Param(k, str(v)) for k, v in entry.params.items()]
        tags = [RunTag("suite", self.suite), RunTag("training", entry.name)]
        with self._file_store_allowed():
            run = self.client.create_run(self.experiment_id, run_name=entry.name)
            rid = run.info.run_id
            for i in range(0, max(len(metrics), 1), 1000):  # MLflow's batch limit
                self.client.log_batch(
                    rid,
                    metrics=metrics[i : i + 1000],
                    params=params if i == 0 else [],
                    tags=tags if i == 0 else [],
                )
            self.client.set_terminated(rid)

    def where(self) -> str:
        return f"mlflow ui --backend-store-uri {self.uri}"


class WandbTracker(Tracker):
    """Weights & Biases: one wandb run per training, ``group`` = suite, config = parameters,
    history at step = epoch, summary = final metrics. Offline unless ``$WANDB_MODE`` says
    otherwise (``wandb sync`` uploads later); files under ``$WANDB_DIR``, else
    ``<suite dir>/tracking/wandb``; project ``$WANDB_PROJECT``, else ``transfer-bench``."""

    name = "wandb"

    def __init__(self, suite: str, suite_dir: Path) -> None:
        super().__init__(suite, suite_dir)
        self.wandb = _import("wandb", "wandb")
        env = os.environ.get("WANDB_DIR")
        self.dir = Path(env) if env else self.suite_dir / "tracking"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.mode = os.environ.get("WANDB_MODE") or "offline"
        self.project = os.environ.get("WANDB_PROJECT") or "transfer-bench"

    def log(self, entry: Logged) -> None:
        wandb = self.wandb
        settings = wandb.Settings(silent=True, console="off", x_disable_stats=True)
        run = wandb.init(
            project=self.project,
            group=self.suite,
            name=entry.name,
            job_type=str(entry.params.get("kind", "training")),
            config=entry.params,
            dir=str(self.dir),
            mode=self.mode,
            reinit="create_new",
            settings=settings,
        )
        try:
            for step, values in entry.steps:
                run.log(values, step=step)
            for k, v in entry.summary.items():
                run.summary[f"final_{k}"] = v
        finally:
            run.finish()

    def close(self) -> None:
        teardown = getattr(self.wandb, "teardown", None)
        if teardown is not None:
            teardown()  # stop wandb's service process with the run, not at interpreter exit

    def where(self) -> str:
        return f"{self.dir / 'wandb'} ({self.mode}; upload with: wandb sync {self.dir / 'wandb'})"


REGISTRY: dict[str, Callable[[str, Path], Tracker]] = {
    "tensorboard": TensorBoardTracker,
    "mlflow": MlflowTracker,
    "wandb": WandbTracker,
}


def open_trackers(names: Sequence[str], suite: str, suite_dir: Path) -> list[Tracker]:
    """The trackers named (see ``TRACKERS``), opened for ``suite``; a missing library is a
    one-line error naming the install command, raised before anything trains."""
    return [REGISTRY[n](suite, suite_dir) for n in parse_trackers(names)]
