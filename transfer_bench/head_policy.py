"""What happens to a transferred ticket's output layer: the ``transfer.head`` policy, resolved.

The head of a ticket is trained (or, with late rewinding, partly trained) on the source's labels.
A target with other labels gives its output units other meanings even when the class count is the
same (CIFAR-10's class 3 is "cat", Fashion-MNIST's is "dress"), so the default policy ``auto``
keeps the head only when the target has the source's labels and re-initializes it otherwise, as
Morcos et al. (2019) do when the class counts differ. Pure functions: the plan resolves the policy
from the suite alone, the transfer run records the action it took.
"""

from __future__ import annotations

from typing import Literal

from transfer_bench.config import DatasetSpec

HeadAction = Literal["keep", "reinit", "match"]

#: what each policy means, for reports and ``plan``
POLICY_TEXT = {
    "auto": "kept for targets with the source's labels, re-initialized for every other target",
    "reinit": "re-initialized for every target",
    "keep": "kept for every target (class counts must match)",
    "match": "kept whenever the class counts match, re-initialized otherwise",
}


def same_labels(source: DatasetSpec, target: DatasetSpec) -> bool:
    """Whether two dataset specs label images the same way: same source, label column, classes.

    Subset sizes and splits may differ (a 1,000-image subset of CIFAR-10 has CIFAR-10's labels).
    """
    return (source.source, source.label, source.classes) == (
        target.source,
        target.label,
        target.classes,
    )


def head_action(policy: str, source: DatasetSpec, target: DatasetSpec) -> HeadAction:
    """``keep``/``reinit``, or ``match`` when it depends on the class counts (known at run time)."""
    if policy == "auto":
        return "keep" if same_labels(source, target) else "reinit"
    if policy in ("keep", "reinit", "match"):
        return policy  # type: ignore[return-value]
    raise ValueError(f"unknown head policy {policy!r}")
