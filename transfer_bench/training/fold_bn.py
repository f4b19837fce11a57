"""BatchNorm folded into the convolution before it, for evaluation only.

In ``eval()`` mode a BatchNorm is an affine map per channel, ``y = (x - mean) / sqrt(var + eps) *
gamma + beta``; when ``x`` is a convolution's output used by nothing else, the map can be moved into
that convolution's weights and bias, and the BatchNorm dropped. The network then computes the same
function with one pass over each activation fewer. The arithmetic changes (the scale is applied to
the weights before the sums instead of to the sums), so logits move in their last bits: up to
~3e-7 in ``benchmarks/conv_options.py`` and ``benchmarks/cpu_precision.py``.

Pruned weights stay exactly zero (a zero times a scale is zero), so a folded ticket keeps its mask.

:func:`fold_batchnorm` is a pure function: it returns a folded copy for evaluation and leaves the
model, its parameters and its BatchNorm statistics alone.
"""

from __future__ import annotations

import copy

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _module(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    return gm.get_submodule(str(node.target)) if node.op == "call_module" else None


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An ``eval()``-mode copy of ``model`` with every foldable BatchNorm folded into its conv.

    A ``BatchNorm2d`` is folded when its input is the output of an ``nn.Conv2d`` that nothing else
    uses and the BatchNorm tracks running statistics. The copy is a ``torch.fx.GraphModule``; a
    model that ``torch.fx`` cannot trace (data-dependent control flow) comes back as a plain
    ``eval()`` copy, unfolded. Parameters keep their dtype, device and memory format.
    """
    original = copy.deepcopy(model).eval()
    try:
        gm = fx.symbolic_trace(original)
    except Exception:  # noqa: BLE001 - any tracing failure: evaluate unfolded
        return original
    gm.eval()
    for node in list(gm.graph.nodes):
        bn = _module(gm, node)
        if not isinstance(bn, nn.BatchNorm2d) or not bn.track_running_stats:
            continue
        if len(node.args) != 1 or not isinstance(node.args[0], fx.Node) or node.kwargs:
            continue
        conv_node = node.args[0]
        conv = _module(gm, conv_node)
        if not isinstance(conv, nn.Conv2d) or len(conv_node.users) != 1:
            continue
        channels_last = conv.weight.is_contiguous(memory_format=torch.channels_last)
        fused = fuse_conv_bn_eval(conv, bn)
        if channels_last:
            fused = fused.to(memory_format=torch.channels_last)
        parent, _, name = str(conv_node.target).rpartition(".")
        setattr(gm.get_submodule(parent) if parent else gm, name, fused)
        node.replace_all_uses_with(conv_node)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm
