"""A GPU worker picks its device itself (issue #16: one process per GPU, `-c 1`): CUDA when
torch sees one (CUDA_VISIBLE_DEVICES chooses which), else the CPU, with no setting."""

from __future__ import annotations

import torch

from worker.ml import featurizer


def test_cuda_when_present_else_cpu(monkeypatch) -> None:
    assert featurizer.default_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert featurizer.default_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert featurizer.default_device().type == "cpu"


def test_the_workers_featurizer_takes_the_default_device(monkeypatch) -> None:
    """worker.compute builds its featurizer without a device: the default decides."""
    from worker import compute

    chosen = []
    monkeypatch.setattr(featurizer, "default_device",
                        lambda: chosen.append("asked") or torch.device("cpu"))
    compute.get_featurizer.cache_clear()
    try:
        f = compute.get_featurizer("efficientnet-lite0")
        assert chosen == ["asked"] and f.device.type == "cpu"
    finally:
        compute.get_featurizer.cache_clear()
