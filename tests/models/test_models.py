"""svbench.models: specs, ResNet backbones, pooling, the AAM head, params/MACs from built models."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from svbench.models import PRESETS, AAMSoftmax, ArchSpec, build, count_macs, count_params, preset, summarize

# WeSpeaker's published figures at m = 32 (REFERENCE.md §2): params in M (backbone, no head),
# MACs in G for 200 frames x 80 mel bins.
PUBLISHED = {
    "ResNet34": (6.63, 4.55),
    "ResNet50": (11.13, 5.17),
    "ResNet101": (15.89, 9.96),
    "ResNet152": (19.81, 14.76),
    "ResNet221": (23.79, 21.29),
    "ResNet293": (28.62, 28.10),
}


def _bn_elements(spec: ArchSpec, frames: int = 200) -> int:
    """Elements entering every BatchNorm in one forward pass (batch 1), on the meta device."""
    with torch.device("meta"):
        model = build(spec)
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        total += inputs[0].numel()

    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.register_forward_hook(hook)
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, frames, spec.n_mels, device="meta"))
    return total


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_preset_params_and_macs_match_published(name):
    params_m, macs_g = PUBLISHED[name]
    summary = summarize(preset(name))
    assert summary["params"] == pytest.approx(params_m * 1e6, rel=0.005)
    assert summary["macs"] == pytest.approx(macs_g * 1e9, rel=0.03)
    # The published MACs come from thop, which also charges each affine BatchNorm 4 ops per input
    # element (2 for normalising, x2 for the affine). FlopCounterMode counts only conv/linear;
    # adding that term back reproduces the published figure to its rounding.
    thop_like = summary["macs"] + 4 * _bn_elements(preset(name))
    assert thop_like == pytest.approx(macs_g * 1e9, rel=0.005)


def test_resnet293_is_about_3_6x_larger_at_width_64():
    params = summarize(preset("ResNet293", width=64))["params"]
    assert params == pytest.approx(103.8e6, rel=0.01)


def test_meta_and_real_models_count_the_same():
    spec = ArchSpec("tiny", "bottleneck", (1, 2, 1, 1), width=8, pooling="asp")
    model = build(spec)
    model.train()
    summary = summarize(spec, frames=50)
    assert summary["params"] == count_params(model)
    assert summary["macs"] == count_macs(model, n_mels=spec.n_mels, frames=50)
    assert model.training  # count_macs restores the mode it found


def test_summarize_lists_spec_and_counts():
    summary = summarize(ArchSpec("r", "basic", (1, 1, 1, 1), width=8))
    assert summary["widths"] == [8, 16, 32, 64]
    assert summary["stages"] == [1, 1, 1, 1]
    assert {"name", "block", "params", "macs"} <= set(summary)
    json.dumps(summary)


# --- specs -------------------------------------------------------------------------------------


def test_presets_are_wespeaker_depths():
    assert preset("resnet34") == PRESETS["ResNet34"]
    assert preset("RESNET293").stages == (10, 20, 64, 3)
    assert preset("ResNet18").block == "basic"
    assert preset("ResNet50").block == "bottleneck"
    wide = preset("ResNet34", width=16)
    assert (wide.name, wide.width, wide.stage_widths) == ("ResNet34_w16", 16, (16, 32, 64, 128))


def test_unknown_preset_lists_known():
    with pytest.raises(ValueError, match="ResNet18.*ResNet293"):
        preset("ResNet35")


def test_round_trip_through_json():
    specs = [
        preset("ResNet101"),
        ArchSpec(
            "conc", "bottleneck", (4, 30, 30, 4), widths=(32, 64, 128, 256), embedding=192, pooling="asp", n_mels=64
        ),
    ]
    for spec in specs:
        again = ArchSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
        assert again == spec


def test_from_dict_with_preset_and_overrides():
    spec = ArchSpec.from_dict({"preset": "resnet34", "width": 16, "name": "r34_w16"})
    assert spec == ArchSpec("r34_w16", "basic", (3, 4, 6, 3), width=16)
    assert ArchSpec.from_dict({"preset": "ResNet50"}) == preset("ResNet50")
    assert ArchSpec.from_dict({"preset": "ResNet50", "width": 64}).name == "ResNet50_w64"
    custom = ArchSpec.from_dict({"preset": "ResNet50", "stages": [1, 12, 2, 1], "name": "r50c"})
    assert custom.stages == (1, 12, 2, 1) and custom.block == "bottleneck"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"name": "a", "block": "basic", "stages": [3, 4]},
            "config key grid[2].stages: expected 4 positive integers, got [3, 4]",
        ),
        ({"name": "a", "block": "basic", "stages": [3, 4, 0, 3]}, "grid[2].stages: expected 4 positive"),
        ({"name": "a", "block": "basic", "stages": [3, 4, 6, 3], "depth": 3}, "grid[2].depth: unknown key"),
        ({"name": "a", "block": "dense", "stages": [3, 4, 6, 3]}, "grid[2].block: expected one of basic"),
        ({"name": "a", "block": "basic", "stages": [3, 4, 6, 3], "width": 0}, "grid[2].width: expected a pos"),
        ({"name": "a", "block": "basic", "stages": [3, 4, 6, 3], "width": True}, "grid[2].width"),
        ({"name": "a", "block": "basic", "stages": [3, 4, 6, 3], "widths": [8, 16]}, "grid[2].widths"),
        ({"name": "a", "block": "basic", "stages": [3, 4, 6, 3], "pooling": "max"}, "grid[2].pooling"),
        ({"name": "a", "block": "basic", "stages": [3, 4, 6, 3], "embedding": -1}, "grid[2].embedding"),
        ({"name": "a", "block": "basic", "stages": [3, 4, 6, 3], "n_mels": 8.0}, "grid[2].n_mels"),
        ({"name": "a/b", "block": "basic", "stages": [3, 4, 6, 3]}, "grid[2].name"),
        ({"block": "basic", "stages": [3, 4, 6, 3]}, "grid[2].name: missing"),
        ({"preset": "ResNet35"}, "grid[2].preset: unknown preset 'ResNet35'"),
        ({"preset": "ResNet34", "stages": [1, 1, 1, 1]}, "grid[2].name: required"),
        ({"preset": "ResNet34", "width": "wide"}, "grid[2].width"),
    ],
)
def test_from_dict_errors_name_the_key(entry, message):
    with pytest.raises(ValueError) as info:
        ArchSpec.from_dict(entry, where="config key grid[2]")
    assert message in str(info.value)


def test_direct_construction_is_validated():
    with pytest.raises(ValueError, match="stages"):
        ArchSpec("a", "basic", (3, 4, 6))
    assert ArchSpec("a", "Basic", [1, 1, 1, 1]).stages == (1, 1, 1, 1)  # normalised


# --- backbones ---------------------------------------------------------------------------------


def test_custom_stages_build():
    spec = ArchSpec("skew", "bottleneck", (1, 12, 2, 1), width=8)
    model = build(spec)
    assert [len(stage) for stage in model.stages] == [1, 12, 2, 1]
    assert model(torch.randn(2, 50, 80)).shape == (2, 256)
    # The concentrated grid point of the study: shapes only, so on the meta device.
    summary = summarize(ArchSpec("conc", "bottleneck", (4, 30, 30, 4)))
    assert summary["params"] > summarize(preset("ResNet101"))["params"]


def test_custom_widths():
    spec = ArchSpec("w", "basic", (1, 1, 1, 1), width=99, widths=(8, 12, 20, 24))
    model = build(spec)
    assert model.stem[0].out_channels == 8
    assert [stage[0].conv2[0].out_channels for stage in model.stages] == [8, 12, 20, 24]
    assert model.embedding.in_features == 2 * 24 * 10  # mean + std of 24 channels x 10 bins
    assert model(torch.randn(1, 40, 80)).shape == (1, 256)


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
@pytest.mark.parametrize("pooling", ["tstp", "asp"])
@pytest.mark.parametrize("frames", [8, 37, 200])
def test_forward_shapes(block, pooling, frames):
    model = build(ArchSpec("s", block, (1, 1, 1, 1), width=4, embedding=32, pooling=pooling))
    model.eval()
    out = model(torch.randn(3, frames, 80))
    assert out.shape == (3, 32)
    assert torch.isfinite(out).all()


def test_odd_mel_count():
    model = build(ArchSpec("m", "basic", (1, 1, 1, 1), width=4, n_mels=75))
    assert model.embedding.in_features == 2 * 32 * 10  # 75 -> 38 -> 19 -> 10
    assert model(torch.randn(1, 30, 75)).shape == (1, 256)


def test_wrong_feature_shape_is_named():
    model = build(ArchSpec("m", "basic", (1, 1, 1, 1), width=4))
    with pytest.raises(ValueError, match=r"m: expected features \(batch, frames, 80\), got \(1, 30, 40\)"):
        model(torch.randn(1, 30, 40))


@pytest.mark.parametrize("pooling", ["tstp", "asp"])
def test_batched_forward_equals_single_forwards(pooling):
    torch.manual_seed(0)
    model = build(ArchSpec("b", "bottleneck", (1, 2, 1, 1), width=8, pooling=pooling))
    model.train()
    model(torch.randn(4, 60, 80))  # move BN running statistics away from their initial values
    model.eval()
    x = torch.randn(5, 60, 80)
    with torch.no_grad():
        batched = model(x)
        single = torch.cat([model(x[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)


def test_backbone_trains():
    model = build(ArchSpec("t", "basic", (1, 1, 1, 1), width=4, embedding=16))
    head = AAMSoftmax(16, 3)
    logits = head(model(torch.randn(4, 20, 80)), torch.tensor([0, 1, 2, 0]))
    F.cross_entropy(logits, torch.tensor([0, 1, 2, 0])).backward()
    assert all(p.grad is not None for p in model.parameters())


# --- AAM softmax -------------------------------------------------------------------------------


def _cosines(head: AAMSoftmax, emb: torch.Tensor) -> torch.Tensor:
    return F.normalize(emb) @ F.normalize(head.weight).T


def test_aam_without_margin_is_scaled_cosine():
    torch.manual_seed(1)
    head = AAMSoftmax(16, 10, scale=32.0, margin=0.0)
    emb, labels = torch.randn(6, 16), torch.randint(0, 10, (6,))
    torch.testing.assert_close(head(emb, labels), 32.0 * _cosines(head, emb))


def test_aam_margin_lowers_only_the_target_logit():
    torch.manual_seed(2)
    head = AAMSoftmax(16, 10, margin=0.0)
    emb, labels = torch.randn(6, 16), torch.randint(0, 10, (6,))
    plain = head(emb, labels)
    head.set_margin(0.2)
    assert head.margin == 0.2
    margined = head(emb, labels)
    target = F.one_hot(labels, 10).bool()
    assert (margined[target] < plain[target]).all()
    torch.testing.assert_close(margined[~target], plain[~target])
    cos = _cosines(head, emb)[target]
    # Away from the threshold the target logit is exactly s*cos(theta + m).
    inside = torch.acos(cos) < math.pi - 0.2
    expected = 32.0 * torch.cos(torch.acos(cos) + 0.2)
    torch.testing.assert_close(margined[target][inside], expected[inside])


def test_aam_threshold_branch_is_continuous():
    head = AAMSoftmax(2, 2, scale=1.0, margin=0.3)
    theta = torch.tensor([math.pi - 0.3 - 1e-4, math.pi - 0.3 + 1e-4])
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    emb = torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
    target_logits = head(emb, torch.tensor([0, 0]))[:, 0]
    assert target_logits[0].item() == pytest.approx(-1.0, abs=1e-3)
    assert target_logits[1].item() == pytest.approx(-1.0, abs=1e-3)
    assert target_logits[1] < target_logits[0]  # still decreasing in theta


def test_aam_easy_margin_leaves_obtuse_targets_alone():
    head = AAMSoftmax(2, 2, scale=1.0, margin=0.2, easy_margin=True)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    emb = torch.tensor([[-1.0, 0.1]])  # cos < 0 to class 0
    assert head(emb, torch.tensor([0]))[0, 0].item() == pytest.approx(_cosines(head, emb)[0, 0].item())
