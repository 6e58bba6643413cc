"""InterNet and its ResNet backbone: official parameter names, forward parity with the official code on real
frames (deterministic weights), output shapes for every depth, ImageNet (torchvision) weight loading, channels_last
and bf16 autocast."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from vendored import OFFICIAL

from internet.config import Config
from internet.model import InterNet, ResNet
from internet.model.checkpoint import CheckpointError, infer_resnet_depth
from internet.model.internet import PoseNet


def official_keys() -> dict[str, tuple[tuple[int, ...], str]]:
    """state_dict_keys.tsv as {key without 'module.': (shape, dtype)}, in file order."""
    rows = (OFFICIAL / "state_dict_keys.tsv").read_text().splitlines()
    assert rows[0].split("\t") == ["key", "shape", "dtype"]
    out = {}
    for row in rows[1:]:
        key, shape, dtype = row.split("\t")
        assert key.startswith("module.")
        out[key[len("module.") :]] = (() if shape == "scalar" else tuple(int(s) for s in shape.split("x")), dtype)
    return out


def fill_value(key: str, like: torch.Tensor) -> torch.Tensor:
    """The fixture README's deterministic value of a state-dict entry (computed in float64, then cast)."""
    n = like.numel()
    if key.endswith("num_batches_tracked"):
        return torch.zeros_like(like)
    phase = (zlib.crc32(key.encode("utf-8")) % 997) / 997 * 2 * np.pi
    x = np.sin(12.9898 * np.arange(n, dtype=np.float64) + phase) * 43758.5453
    base = 2 * (x - np.floor(x)) - 1
    if key.endswith("running_var"):
        value = 0.75 + 0.25 * base
    elif key.endswith("running_mean"):
        value = 0.05 * base
    elif like.dim() >= 2:
        value = 2 * base / np.sqrt(n / like.shape[0])
    elif key.endswith("weight"):
        value = 1 + 0.1 * base
    else:
        value = 0.02 * base
    return torch.from_numpy(value.reshape(like.shape)).to(like.dtype)


def fill_model(model: torch.nn.Module) -> torch.nn.Module:
    model.load_state_dict({k: fill_value(k, v) for k, v in model.state_dict().items()})
    return model


def hard_argmax_xyz(heatmap: torch.Tensor) -> torch.Tensor:
    """(B, J, D, H, W) -> (B, J, 3) integer voxel (x, y, z) of each volume's maximum."""
    d, h, w = heatmap.shape[2:]
    idx = heatmap.flatten(2).argmax(dim=2)
    return torch.stack([idx % w, (idx // w) % h, idx // (h * w)], dim=-1)


@pytest.fixture(scope="module")
def filled_forward():
    """ResNet-50 InterNet with the fixture's weights, run once in eval mode on the fixture's 3 real crops."""
    ref = dict(np.load(OFFICIAL / "forward_fill.npz"))
    model = fill_model(InterNet(resnet_type=50)).eval()
    captured = {}
    model.backbone_net.register_forward_hook(lambda mod, inp, out: captured.__setitem__("c5", out))
    with torch.no_grad():
        out = model(torch.from_numpy(ref["img"].astype(np.float32)))
    return ref, out, captured["c5"]


def assert_close_scaled(ours, ref, rtol: float, what: str) -> None:
    """Max abs difference within rtol x the reference's largest magnitude."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} vs {ref.shape}"
    err, scale = np.abs(ours - ref).max(), np.abs(ref).max()
    assert err <= rtol * scale, f"{what}: max error {err:.3g} > {rtol} x {scale:.3g}"


# --------------------------------------------------------------------------------------------- names and shapes
def test_state_dict_matches_official_checkpoint_keys():
    expected = official_keys()
    assert len(expected) == 366
    state = InterNet(resnet_type=50).state_dict()
    ours = {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()}
    assert list(ours) == list(expected)  # same names, same order
    assert ours == expected


def test_parameter_count_resnet50():
    # hand count from the spec: trunk 23,508,032 + 2 x 10,832,704 + 1,081,920 + 1,050,114
    assert sum(p.numel() for p in InterNet(50).parameters()) == 47_305_474


def test_official_init_statistics():
    torch.manual_seed(0)
    model = InterNet(resnet_type=18)
    conv = model.backbone_net.resnet.layer1[0].conv1.weight
    deconv = model.pose_net.joint_deconv_1[0].weight
    fc = model.pose_net.root_fc[0].weight
    assert abs(conv.std().item() - 0.001) < 1e-4 and abs(deconv.std().item() - 0.001) < 1e-4
    assert abs(fc.std().item() - 0.01) < 1e-3
    assert torch.all(model.pose_net.joint_conv_1[0].bias == 0) and torch.all(model.pose_net.hand_fc[2].bias == 0)
    bn = model.pose_net.joint_deconv_2[1]
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


# --------------------------------------------------------------------------------------------- forward parity
def test_forward_fill_backbone_mean(filled_forward):
    ref, _, c5 = filled_forward
    assert c5.shape == (3, 2048, 8, 8)
    assert_close_scaled(c5.mean(dim=(2, 3)), ref["backbone_mean"], 1e-4, "backbone_mean")


def test_forward_fill_heatmaps(filled_forward):
    ref, out, _ = filled_forward
    hm = out["joint_heatmap"]
    assert hm.shape == (3, 42, 64, 64, 64) and hm.dtype == torch.float32
    assert_close_scaled(hm[:, :, ::8, ::8, ::8], ref["heatmap_probe"], 1e-4, "heatmap_probe")
    assert_close_scaled(hm.double().sum(dim=(2, 3, 4)), ref["heatmap_sum"], 1e-4, "heatmap_sum")


def test_forward_fill_hard_argmax(filled_forward):
    ref, out, _ = filled_forward
    hm = out["joint_heatmap"]
    ours = hard_argmax_xyz(hm).numpy()
    official = ref["joint_coord"].astype(np.int64)
    differ = np.argwhere((ours != official).any(-1))
    # A different voxel is only acceptable when the official one ties with our maximum within float32 noise.
    for b, j in differ:
        x, y, z = official[b, j]
        gap = (hm[b, j].max() - hm[b, j, z, y, x]).item()
        assert gap <= 1e-4 * hm[b, j].abs().max().item(), (
            f"sample {b} joint {j}: argmax {ours[b, j]} vs {official[b, j]}"
        )
    assert len(differ) <= 2


def test_forward_fill_root_depth_and_hand_type(filled_forward):
    ref, out, _ = filled_forward
    assert out["rel_root_depth"].shape == (3, 1) and out["rel_root_depth"].dtype == torch.float32
    np.testing.assert_allclose(out["rel_root_depth"].numpy(), ref["rel_root_depth"], rtol=2e-4)
    np.testing.assert_allclose(out["hand_type"].numpy(), ref["hand_type"], rtol=2e-4, atol=1e-7)
    np.testing.assert_allclose(torch.sigmoid(out["hand_type_logits"]).numpy(), out["hand_type"].numpy())


def test_forward_fill_losses_match_official_loss_values(filled_forward):
    """loss_values.json: the official losses of this deterministic model (BatchNorm in eval mode, as here) on the
    test-mode targets of data_test_mode.npz, through InterNetLoss from the batch keys. The official hand-type loss is
    the BCE on saturated probabilities (its log clamp), so it is compared on the probability path; the logit path is
    the with-logits BCE of the same outputs."""
    import json

    from internet.model.losses import InterNetLoss, hand_type_loss

    forward_ref, out, _ = filled_forward
    ref = json.loads((OFFICIAL / "loss_values.json").read_text())
    test_mode = np.load(OFFICIAL / "data_test_mode.npz")
    batch = {k: torch.from_numpy(test_mode[k]) for k in InterNetLoss.REQUIRED_BATCH}
    probs_only = {k: v for k, v in out.items() if k != "hand_type_logits"}
    # the root depth's loss is |output - target|: on the fixture's own outputs it must match to float32 noise; on
    # ours it carries the forward's tolerance (rtol 2e-4, test_forward_fill_root_depth_and_hand_type), which a CPU
    # without AVX-512 reaches in the summation order of the root heatmap's soft-argmax
    official_root = {**probs_only, "rel_root_depth": torch.from_numpy(forward_ref["rel_root_depth"])}
    for fast in (True, False):
        terms = InterNetLoss(2.5, (64, 64, 64), fast=fast)(probs_only, batch)
        for name in ("joint_heatmap", "hand_type"):
            assert terms[name].item() == pytest.approx(ref[name], rel=1e-5), (name, fast)
        assert terms["rel_root_depth"].item() == pytest.approx(ref["rel_root_depth"], rel=2e-4), fast
        exact = InterNetLoss(2.5, (64, 64, 64), fast=fast)(official_root, batch)["rel_root_depth"]
        assert exact.item() == pytest.approx(ref["rel_root_depth"], rel=1e-5), fast
    with_logits = InterNetLoss(2.5, (64, 64, 64))(out, batch)["hand_type"]
    assert with_logits.item() == pytest.approx(
        hand_type_loss(out["hand_type_logits"], batch["hand_type"], batch["hand_type_valid"]).item(), rel=1e-6
    )


# --------------------------------------------------------------------------------------------- every depth
@pytest.mark.parametrize(
    "depth, channels, size", [(18, 512, 64), (34, 512, 32), (50, 2048, 64), (101, 2048, 32), (152, 2048, 32)]
)
def test_every_depth_builds_and_shapes(depth, channels, size):
    model = InterNet(resnet_type=depth).eval()
    assert model.backbone_net.resnet.out_channels == channels
    assert (
        model.pose_net.joint_deconv_1[0].in_channels == channels and model.pose_net.hand_fc[0].in_features == channels
    )
    assert infer_resnet_depth(model.state_dict()) == depth
    root_logits = []
    model.pose_net.root_fc.register_forward_hook(lambda mod, inp, out: root_logits.append(out))
    with torch.no_grad():
        out = model(torch.rand(2, 3, size, size))
    hw = size // 4  # stride 32 backbone, x8 deconv
    assert out["joint_heatmap"].shape == (2, 42, 64, hw, hw)
    assert out["rel_root_depth"].shape == (2, 1) and out["hand_type_logits"].shape == (2, 2)
    assert out["hand_type"].shape == (2, 2)
    # the official soft-argmax: the expected bin index under softmax(root_fc), bins 0..63
    (z,) = root_logits
    expected = (torch.softmax(z.double(), dim=1) * torch.arange(64, dtype=torch.float64)).sum(1, keepdim=True)
    torch.testing.assert_close(out["rel_root_depth"].double(), expected, rtol=1e-5, atol=1e-5)


def test_from_config_and_bad_parameters():
    model = InterNet.from_config(Config(resnet_type=18, output_hm_shape=(32, 64, 64), output_root_hm_shape=16))
    assert model.resnet_type == 18 and model.backbone_net.resnet.out_channels == 512
    assert model.pose_net.joint_conv_1[0].out_channels == 21 * 32 and model.pose_net.root_fc[2].out_features == 16
    with pytest.raises(ValueError, match="resnet depth 42"):
        InterNet(resnet_type=42)
    with pytest.raises(ValueError, match="output_hm_shape"):
        InterNet(resnet_type=18, output_hm_shape=(64, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        InterNet(resnet_type=18)(torch.rand(3, 64, 64))


def test_fc_input_norm_normalises_the_head_input_and_has_its_own_keys():
    torch.manual_seed(0)
    plain, normed = InterNet(resnet_type=18), InterNet.from_config(Config(resnet_type=18, fc_input_norm=True))
    extra = set(normed.state_dict()) - set(plain.state_dict())
    assert extra == {"pose_net.fc_input_norm.weight", "pose_net.fc_input_norm.bias"}
    assert set(plain.state_dict()) <= set(normed.state_dict())
    normed.pose_net.load_state_dict(plain.pose_net.state_dict(), strict=False)
    # A non-negative feature map, as the backbone gives; doubling it and adding a constant shifts and scales the pooled
    # feature, which the norm removes: the root-depth and hand-type heads then answer the same, the plain ones do not.
    feat = torch.rand(2, 512, 4, 4) * 3
    with torch.no_grad():
        for net, same in ((normed, True), (plain, False)):
            a, b = net.pose_net(feat), net.pose_net(feat * 2 + 1)
            for key in ("rel_root_depth", "hand_type_logits"):
                assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-5) == same, (key, same)
        # the heatmap branches do not see it
        assert torch.equal(normed.pose_net(feat)["joint_heatmap"], plain.pose_net(feat)["joint_heatmap"])


# --------------------------------------------------------------------------------------------- speed paths
@pytest.fixture(scope="module")
def small_filled_model():
    torch.manual_seed(0)
    return fill_model(InterNet(resnet_type=18)).eval()


def test_channels_last_matches_contiguous(small_filled_model):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = small_filled_model(x)
        model_cl = fill_model(InterNet(resnet_type=18)).eval().to(memory_format=torch.channels_last)
        out = model_cl(x.contiguous(memory_format=torch.channels_last))
    for key in ref:
        assert out[key].shape == ref[key].shape
        assert_close_scaled(out[key], ref[key], 1e-4, f"channels_last {key}")


@pytest.mark.parametrize("channels_last", [False, True])
def test_joint_heatmaps_equal_the_official_convolutions(channels_last):
    """The heads' 1x1 convolutions run as one batched product into one tensor: the same numbers as calling
    ``joint_conv_{1,2}`` on their branch and concatenating the reshaped outputs (right hand first), with biases that
    differ per hand and channel, and the same gradients for both convolutions' weights and biases."""
    torch.manual_seed(3)
    net = PoseNet(in_channels=32, joint_num=21, depth_bins=4, root_bins=8, head_channels=8)
    with torch.no_grad():
        for conv in (net.joint_conv_1[0], net.joint_conv_2[0]):
            conv.weight.normal_()
            conv.bias.normal_()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    feat = torch.randn(3, 32, 2, 2).contiguous(memory_format=fmt)

    def official(module):
        parts = []
        for deconv, conv in (
            (module.joint_deconv_1, module.joint_conv_1),
            (module.joint_deconv_2, module.joint_conv_2),
        ):
            out = conv(deconv(feat))
            parts.append(out.reshape(out.shape[0], 21, 4, *out.shape[2:]))
        return torch.cat(parts, dim=1)

    got, ref = net.joint_heatmaps(feat), official(net)
    assert got.shape == (3, 42, 4, 16, 16) and torch.allclose(got, ref, rtol=1e-5, atol=1e-5)
    weights = torch.randn(ref.shape)
    grads = []
    for value in (got, ref):
        net.zero_grad()
        (value * weights).sum().backward(retain_graph=True)
        grads.append([p.grad.clone() for p in (net.joint_conv_1[0].weight, net.joint_conv_2[0].bias)])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)


def test_bf16_autocast_keeps_float32_heads(small_filled_model):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = small_filled_model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = small_filled_model(x)
    assert out["joint_heatmap"].dtype == torch.bfloat16
    for key in ("rel_root_depth", "hand_type_logits", "hand_type"):
        assert out[key].dtype == torch.float32, key
    assert torch.isfinite(out["joint_heatmap"].float()).all()
    assert_close_scaled(out["joint_heatmap"].float(), ref["joint_heatmap"], 0.1, "bf16 heatmap")
    # the soft-argmax bins are an expectation over 64 bins: bf16 trunk noise moves them by well under a bin
    assert (out["rel_root_depth"] - ref["rel_root_depth"]).abs().max() < 2.0


# --------------------------------------------------------------------------------------------- ImageNet weights
def torchvision_style_state(depth_keys: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under torchvision's ResNet names (from the official key list) plus its classifier."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, (shape, dtype) in depth_keys.items():
        if dtype == "int64":
            state[key] = torch.tensor(7)
        else:
            state[key] = torch.randn(shape, generator=g)
    state["fc.weight"] = torch.randn(1000, 2048, generator=g)
    state["fc.bias"] = torch.randn(1000, generator=g)
    return state


def resnet50_official_names() -> dict:
    prefix = "backbone_net.resnet."
    return {k[len(prefix) :]: v for k, v in official_keys().items() if k.startswith(prefix)}


def test_torchvision_state_dict_loads(tmp_path):
    tv = torchvision_style_state(resnet50_official_names())
    path = tmp_path / "resnet50-fake.pth"
    torch.save(tv, path)
    model = InterNet(resnet_type=50, pretrained_backbone=str(path))
    loaded = model.backbone_net.resnet.state_dict()
    assert set(loaded) == set(tv) - {"fc.weight", "fc.bias"}
    for key, value in loaded.items():
        assert torch.equal(value, tv[key]), key
    assert not hasattr(model.backbone_net.resnet, "fc")
    # heads keep the official init (not touched by the ImageNet file)
    assert abs(model.pose_net.root_fc[0].weight.std().item() - 0.01) < 1e-3


def test_old_torchvision_file_without_bn_counters_loads():
    tv = {
        k: v
        for k, v in torchvision_style_state(resnet50_official_names()).items()
        if not k.endswith("num_batches_tracked")
    }
    backbone = ResNet(50)
    backbone.load_torchvision(tv)
    assert torch.equal(backbone.layer4[2].bn3.running_var, tv["layer4.2.bn3.running_var"])
    assert int(backbone.bn1.num_batches_tracked) == 0


def test_torchvision_state_dict_errors_name_the_problem(tmp_path):
    tv = torchvision_style_state(resnet50_official_names())
    missing = dict(tv)
    del missing["layer4.2.bn3.running_var"]
    with pytest.raises(CheckpointError, match=r"missing keys.*layer4\.2\.bn3\.running_var"):
        ResNet(50).load_torchvision(missing)
    wrong = dict(tv)
    wrong["layer2.0.conv2.weight"] = torch.zeros(128, 128, 1, 1)
    with pytest.raises(
        CheckpointError, match=r"shape mismatches: layer2\.0\.conv2\.weight checkpoint \(128, 128, 1, 1\)"
    ):
        ResNet(50).load_torchvision(wrong)
    path = tmp_path / "resnet50.pth"
    torch.save(tv, path)
    with pytest.raises(CheckpointError, match=r"checkpoint is ResNet-50, model is ResNet-18") as info:
        ResNet(18).load_torchvision(path)
    assert str(path) in str(info.value)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        ResNet(18).load_torchvision(tmp_path / "nope.pth")
