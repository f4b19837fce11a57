"""BatchNorm folded into the preceding convolution computes the same network, for evaluation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from transfer_bench.models import build_model
from transfer_bench.training.fold_bn import fold_batchnorm


def trained(name: str, width: int, seed: int = 0) -> nn.Module:
    """A small model whose BatchNorms have non-trivial statistics and affine parameters."""
    model = build_model(
        name, num_classes=10, in_channels=3, image_size=16, seed=seed, options={"width": width}
    )
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.bias.normal_(0.0, 0.5, generator=g)
        model.train()
        for _ in range(3):
            model(torch.randn(32, 3, 16, 16, generator=g) * 3 + 1)
    return model.eval()


def batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_folded_logits_and_predictions_match() -> None:
    x = torch.randn(128, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    for name, width in (("resnet20", 4), ("vgg11", 8)):  # residual shortcuts; convs with bias
        model = trained(name, width)
        folded = fold_batchnorm(model)
        assert batchnorms(model) > 0 and batchnorms(folded) == 0, name
        with torch.inference_mode():
            ref, out = model(x), folded(x)
        assert not torch.equal(ref, out)  # different arithmetic: it really is a folded network
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        assert torch.equal(out.argmax(1), ref.argmax(1)), name


def test_the_model_is_left_alone() -> None:
    model = trained("resnet20", 4).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_batchnorm(model)
    assert model.training and not folded.training
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_pruned_weights_stay_zero_and_layout_is_kept() -> None:
    model = trained("vgg11", 8)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.mul_(torch.rand(m.weight.shape, generator=g) < 0.3)
    model.to(memory_format=torch.channels_last)
    zeros = [m.weight == 0 for m in model.modules() if isinstance(m, nn.Conv2d)]
    convs = [m for m in fold_batchnorm(model).modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == len(zeros)
    for conv, zero in zip(convs, zeros, strict=True):
        assert bool((conv.weight[zero] == 0).all())
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)


class SharedConv(nn.Module):
    """A convolution whose output feeds its BatchNorm and a residual sum: not foldable."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return F.relu(self.bn(y)) + y


class Untraceable(SharedConv):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            return self.bn(self.conv(x))
        return self.conv(x)


def test_shared_outputs_and_untraceable_models_stay_unfolded() -> None:
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    for model in (SharedConv(), Untraceable()):
        model.bn.running_mean.fill_(0.3)
        model.eval()
        folded = fold_batchnorm(model)
        assert batchnorms(folded) == 1 and not folded.training
        with torch.inference_mode():
            assert torch.equal(folded(x), model(x))


def test_training_scores_cpu_channels_last_runs_with_batchnorm_folded():
    """The loop evaluates a CPU channels_last training with BatchNorm folded (1.27-1.41x faster,
    no prediction changed in benchmarks/cpu_precision.py); other trainings evaluate as they are."""
    from transfer_bench.config import OptimizerSpec, TrainSpec
    from transfer_bench.training import TrainData, evaluate, train

    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 3, 12, 12, generator=g)
    y = torch.randint(0, 4, (48,), generator=g)
    data = TrainData(x, y, x[:24], y[:24])
    for layout in ("on", "off"):
        m = build_model("conv2", num_classes=4, in_channels=3, image_size=12, seed=0)
        spec = TrainSpec(batch_size=16, epochs=1, channels_last=layout)
        out = train(m, data, spec, OptimizerSpec(name="sgd", lr=0.05), None, order_seed=0)
        scored = fold_batchnorm(m) if layout == "on" else m
        assert out.history[-1]["test_loss"] == evaluate(scored, x[:24], y[:24])[0]
