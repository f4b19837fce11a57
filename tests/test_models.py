"""Model registry: shapes, contract attributes, determinism, head reset, paper sizes, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transfer_bench.errors import ModelError
from transfer_bench.models import (
    build_model,
    count_flops,
    head_parameters,
    list_models,
    prunable_parameters,
    reset_head,
)

TIMM_SMALL = "timm:test_resnet"  # tiny timm test architecture, no weights needed
MODELS = [TIMM_SMALL if n == "timm:<name>" else n for n in list_models()] + ["timm:test_byobnet"]
INPUTS = [(1, 28, 10), (3, 32, 100)]  # (channels, image size, classes)


def _build(name: str, c: int = 3, s: int = 32, k: int = 10, seed: int = 0, **options) -> nn.Module:
    return build_model(
        name, num_classes=k, in_channels=c, image_size=s, seed=seed, options=options or None
    )


def _states_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_registry_lists_zoo_and_timm_family() -> None:
    names = list_models()
    for expected in ("lenet_300_100", "conv2", "conv4", "conv6", "resnet20", "timm:<name>"):
        assert expected in names


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(("c", "s", "k"), INPUTS)
def test_builds_with_logits_and_contract_attributes(name: str, c: int, s: int, k: int) -> None:
    model = _build(name, c, s, k)
    model.train()
    out = model(torch.randn(4, c, s, s))
    assert out.shape == (4, k) and out.dtype == torch.float32
    params = dict(model.named_parameters())
    assert set(model.prunable_names) <= params.keys()
    assert set(model.head_names) <= params.keys()
    assert all(params[n].dim() > 1 for n in model.prunable_names)
    # head = exactly the parameters of the last Linear layer, and its weight is prunable
    last = [(p, m) for p, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    assert set(model.head_names) == {f"{last[0]}.{n}" for n, _ in last[1].named_parameters()}
    assert f"{last[0]}.weight" in model.prunable_names
    assert model.model_spec == {
        "name": name,
        "num_classes": k,
        "in_channels": c,
        "image_size": s,
        "options": {},
    }
    assert list(prunable_parameters(model)) == list(model.prunable_names)
    assert all(isinstance(p, nn.Parameter) for p in head_parameters(model).values())


@pytest.mark.parametrize("name", MODELS)
def test_seeded_init_is_deterministic_and_leaves_global_rng(name: str) -> None:
    before = torch.random.get_rng_state()
    a, b, c = _build(name, seed=3), _build(name, seed=3), _build(name, seed=4)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert _states_equal(a, b)
    assert not _states_equal(a, c)


@pytest.mark.parametrize("name", MODELS)
def test_reset_head_changes_only_head_and_is_deterministic(name: str) -> None:
    base = _build(name, seed=1)
    a, b, c = _build(name, seed=1), _build(name, seed=1), _build(name, seed=1)
    before = torch.random.get_rng_state()
    reset_head(a, torch.Generator().manual_seed(7))
    reset_head(b, torch.Generator().manual_seed(7))
    reset_head(c, torch.Generator().manual_seed(8))
    assert torch.equal(torch.random.get_rng_state(), before)
    assert _states_equal(a, b)
    assert not _states_equal(a, c)
    pa, p0 = dict(a.named_parameters()), dict(base.named_parameters())
    for n in pa:
        if n not in a.head_names:
            assert torch.equal(pa[n], p0[n]), n
        elif n.endswith("weight"):
            assert not torch.equal(pa[n], p0[n]), n
        elif not name.startswith("timm:"):  # zoo biases start (and restart) at zero
            assert not pa[n].any(), n
    sa, s0 = a.state_dict(), base.state_dict()
    assert all(torch.equal(sa[k], s0[k]) for k in sa if k not in a.head_names)  # buffers too


def test_reset_head_keeps_init_distribution() -> None:
    model = _build("conv2", k=100)
    w0 = model.fc.weight.detach().clone()
    reset_head(model, torch.Generator().manual_seed(0))
    std = (2.0 / (256 + 100)) ** 0.5  # Glorot normal
    assert abs(model.fc.weight.std().item() - std) < 0.1 * std
    assert abs(w0.std().item() - std) < 0.1 * std


def test_lenet_param_count_matches_paper() -> None:
    model = _build("lenet_300_100", c=1, s=28, k=10)
    assert sum(p.numel() for p in model.parameters()) == 266_610
    assert count_flops(model, (1, 28, 28)) == 2 * (784 * 300 + 300 * 100 + 100 * 10)


# Frankle & Carbin (2019), Figure 2: Conv-2 4.3M, Conv-4 2.4M weights. Their table says 1.7M for
# Conv-6, but the layer list it gives (64,64,P,128,128,P,256,256,P; FC 256,256,10) has 2.26M weights.
@pytest.mark.parametrize(
    ("name", "weights"), [("conv2", 4_300_992), ("conv4", 2_425_024), ("conv6", 2_261_184)]
)
def test_conv_weight_counts_match_paper(name: str, weights: int) -> None:
    model = _build(name, c=3, s=32, k=10)
    assert sum(p.numel() for p in prunable_parameters(model).values()) == weights


def test_resnet20_size_width_and_flops() -> None:
    model = _build("resnet20", c=3, s=32, k=10)
    total = sum(p.numel() for p in model.parameters())
    assert 0.26e6 < total < 0.28e6
    assert "blocks.3.shortcut.0.weight" in model.prunable_names  # projection shortcut is prunable
    wide = _build("resnet20", c=3, s=32, k=10, width=32)
    assert wide.fc.in_features == 128
    assert wide.model_spec["options"] == {"width": 32}
    assert 35e6 < count_flops(model, (3, 32, 32)) / 2 < 45e6  # ~41M MACs, as usually reported
    assert count_flops(model, (5, 3, 32, 32)) == 5 * count_flops(model, (3, 32, 32))
    assert model.training  # count_flops restores the mode


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(ModelError, match="did you mean .*'conv4'"):
        _build("conv5")
    with pytest.raises(ModelError, match="known models: .*lenet_300_100"):
        _build("nonsense")
    with pytest.raises(ModelError, match="did you mean 'timm:test_resnet'"):
        _build("timm:test_resnt")


def test_bad_options_and_arguments_raise_model_error() -> None:
    with pytest.raises(ModelError, match="no option 'widht'.*did you mean 'width'"):
        _build("resnet20", widht=8)
    with pytest.raises(ModelError, match="'conv4' has no option 'width'"):
        _build("conv4", width=8)
    with pytest.raises(ModelError, match="'width' must be a positive integer"):
        _build("resnet20", width=0)
    with pytest.raises(ModelError, match="'pretrained' is not allowed"):
        _build(TIMM_SMALL, pretrained=True)
    with pytest.raises(ModelError, match="could not be built"):
        _build(TIMM_SMALL, not_an_option=1)
    with pytest.raises(ModelError, match="cannot run on 3x32x32 inputs.*img_size"):
        _build("timm:vit_tiny_patch16_224")
    with pytest.raises(ModelError, match="num_classes"):
        _build("conv2", k=0)
    with pytest.raises(ModelError, match="image_size >= 8"):
        _build("conv6", s=4)
    with pytest.raises(ModelError, match="build_model"):
        reset_head(nn.Linear(2, 2), torch.Generator())


# --------------------------------------------------------------------------- paper-scale CIFAR nets

# Parameters at 3x32x32 and 10 classes. Frankle & Carbin (2019) Fig. 2: VGG-19 20.0M; He et al. (2016):
# ResNet-56 0.85M; CIFAR-stem ResNet-18 11.2M and ResNet-50 23.5M (torchvision layout, 3x3 stem).
PAPER_NETS = {
    "vgg11": (9_231_114, 512),
    "vgg16": (14_728_266, 512),
    "vgg19": (20_040_522, 512),
    "resnet56": (855_770, 64),
    "resnet18": (11_173_962, 512),
    "resnet50": (23_520_842, 2048),
}


@pytest.mark.parametrize("name", list(PAPER_NETS))
def test_paper_scale_nets_sizes_heads_and_shapes(name: str) -> None:
    total, features = PAPER_NETS[name]
    for k in (10, 100):
        model = _build(name, c=3, s=32, k=k)
        assert sum(p.numel() for p in model.parameters()) == total + (k - 10) * (features + 1)
        assert (model.fc.in_features, model.fc.out_features) == (features, k)
        assert model.head_names == ("fc.weight", "fc.bias") and "fc.weight" in model.prunable_names
        convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
        assert list(model.prunable_names) == [f"{n}.weight" for n in convs] + ["fc.weight"]
        model.to("meta")  # shape-only forward: the real one is covered by the generic tests
        for c, s in ((3, 32), (3, 28)):
            assert model(torch.empty(2, c, s, s, device="meta")).shape == (2, k)
    for paper, got in (("vgg19", 20.0e6), ("resnet56", 0.85e6), ("resnet18", 11.2e6)):
        if name == paper:
            assert abs(total - got) / got < 0.01
    if name == "resnet50":
        assert abs(total - 23.5e6) / 23.5e6 < 0.01


def test_paper_scale_nets_layout_options_and_errors() -> None:
    vgg = _build("vgg19", c=1, s=28, k=10)
    assert vgg.prunable_names[0] == "layers.0.conv.weight"  # OpenLTH names
    assert vgg.layers[0].conv.weight.shape == (64, 1, 3, 3)
    assert sum(isinstance(m, nn.MaxPool2d) for m in vgg.modules()) == 4
    with pytest.raises(ModelError, match="image_size >= 16"):
        _build("vgg11", s=8)
    narrow = _build("vgg19", width=8)  # every stage scaled by 8/64, layout kept
    convs = [m for m in narrow.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 8, 16, 16, *[32] * 4, *[64] * 8]
    assert narrow.fc.in_features == 64 and narrow.model_spec["options"] == {"width": 8}
    with pytest.raises(ModelError, match="'vgg16' has no option 'depth'"):
        _build("vgg16", depth=8)
    with pytest.raises(ModelError, match="'width' must be a positive integer"):
        _build("vgg11", width=0)
    deep = _build("resnet56", width=4)
    assert len(deep.blocks) == 27 and deep.fc.in_features == 16
    assert deep.model_spec["options"] == {"width": 4}
    with pytest.raises(ModelError, match="'width' must be a positive integer"):
        _build("resnet56", width=0)
    small = _build("resnet50", width=8)
    assert small.fc.in_features == 8 * 8 * 4 and small.conv1.kernel_size == (3, 3)
    assert small.conv1.stride == (1, 1) and not any(
        isinstance(m, nn.MaxPool2d) for m in small.modules()
    )
    assert "layer2.0.downsample.0.weight" in small.prunable_names
    assert small.layer2[0].conv2.stride == (2, 2)  # v1.5: stride on the 3x3 conv
    with pytest.raises(ModelError, match="no option 'depth'"):
        _build("resnet18", depth=34)


def test_cifar_resnets_match_torchvision_names() -> None:
    tv = pytest.importorskip("torchvision.models")
    for ours, theirs in (("resnet18", tv.resnet18), ("resnet50", tv.resnet50)):
        model = _build(ours, width=8)
        with torch.device("meta"):
            reference = theirs(num_classes=10)
        assert list(model.state_dict()) == list(reference.state_dict())  # names and order
