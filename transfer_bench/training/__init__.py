"""Training: optimizers, LR schedules, the masked training loop and evaluation."""

from transfer_bench.training.loop import TrainData, TrainOutcome, evaluate, train
from transfer_bench.training.optim import build_optimizer, lr_factor

__all__ = ["TrainData", "TrainOutcome", "build_optimizer", "evaluate", "lr_factor", "train"]
