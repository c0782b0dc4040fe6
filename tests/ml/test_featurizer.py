"""Featurizer: real pretrained EfficientNet-Lite0 embeddings of real photos, bad files, batching."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from worker.ml.featurizer import EmbeddedBatch, Featurizer, default_device
from worker.ml.images import load_rgb_crop

DATASET = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "clothing-small"
pytestmark = pytest.mark.skipif(
    not (DATASET / "train").is_dir(),
    reason=f"real photos not found at {DATASET} (../shared is absent on this machine)",
)


def _photos(n: int) -> list[Path]:
    """n photos from different classes, so embeddings differ."""
    classes = sorted(p for p in (DATASET / "test").iterdir() if p.is_dir())
    out: list[Path] = []
    i = 0
    while len(out) < n:
        files = sorted(classes[i % len(classes)].glob("*.jpg"))
        out.append(files[i // len(classes)])
        i += 1
    return out


@pytest.fixture(scope="module")
def lite0() -> Featurizer:
    return Featurizer("efficientnet-lite0", device="cpu", batch_size=4)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def test_default_device_is_cpu_here() -> None:
    assert default_device().type in ("cpu", "cuda")


def test_embeddings_stable_across_batch_sizes(lite0: Featurizer) -> None:
    paths = _photos(6)
    ref, errors = lite0.embed_paths(paths)
    assert errors == {} and ref.shape == (6, 1280) and ref.dtype == np.float32
    assert np.isfinite(ref).all()
    for bs, workers in ((1, 1), (5, 2), (6, 3)):
        f = Featurizer("efficientnet-lite0", device="cpu", batch_size=bs, num_workers=workers)
        emb, _ = f.embed_paths(paths)
        assert _cos(ref, emb).min() >= 0.99
    # Different photos give clearly different embeddings (not a constant / random model).
    sims = _cos(ref[:-1], ref[1:])
    assert sims.max() < 0.95


def test_corrupt_file_is_an_error_entry_and_the_rest_embed(
    lite0: Featurizer, tmp_path: Path
) -> None:
    good = _photos(3)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good[0].read_bytes()[:2000])
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    paths = [good[0], truncated, good[1], tmp_path / "missing.jpg", text, good[2]]
    emb, errors = lite0.embed_paths(paths)
    assert sorted(errors) == [1, 3, 4]
    assert all(isinstance(m, str) and m for m in errors.values())
    assert np.isnan(emb[[1, 3, 4]]).all()
    assert np.isfinite(emb[[0, 2, 5]]).all()
    batches = list(lite0.iter_batches(paths))
    assert all(isinstance(b, EmbeddedBatch) for b in batches)
    assert np.concatenate([b.indices for b in batches]).tolist() == [0, 2, 5]
    assert sum(len(b) for b in batches) == len(paths)
    ref, _ = lite0.embed_paths([good[0], good[1], good[2]])
    np.testing.assert_allclose(emb[[0, 2, 5]], ref, rtol=1e-4, atol=1e-4)


def test_iter_batches_in_order_and_early_stop(lite0: Featurizer) -> None:
    paths = _photos(9)
    seen = []
    for batch in lite0.iter_batches(paths):
        seen.extend(batch.indices.tolist())
        assert batch.embeddings.shape == (len(batch.indices), lite0.dim)
    assert seen == list(range(9))
    first = next(iter(lite0.iter_batches(paths)))  # abandoning the generator must not hang
    assert first.indices.tolist() == [0, 1, 2, 3]
    assert list(lite0.iter_batches([])) == []


def test_decoding_modes_and_orientation(tmp_path: Path) -> None:
    src = _photos(1)[0]
    im = Image.open(src).convert("RGB")
    # A portrait photo stored sideways with an EXIF "rotate 90" tag must come out upright.
    exif = Image.Exif()
    exif[0x0112] = 6
    im.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "rot.jpg", exif=exif.tobytes())
    upright = load_rgb_crop(src, 224, 256)
    fixed = load_rgb_crop(tmp_path / "rot.jpg", 224, 256)
    assert np.abs(upright.astype(int) - fixed.astype(int)).mean() < 12
    # The same through the draft-mode (large JPEG) path.
    big = im.resize((im.width * 3, im.height * 3)).transpose(Image.Transpose.ROTATE_90)
    big.save(tmp_path / "big_rot.jpg", exif=exif.tobytes(), quality=90)
    fixed_big = load_rgb_crop(tmp_path / "big_rot.jpg", 224, 256)
    assert np.abs(upright.astype(int) - fixed_big.astype(int)).mean() < 12
    for mode in ("L", "RGBA", "P", "CMYK"):
        path = tmp_path / f"x_{mode}.{'jpg' if mode in ('L', 'CMYK') else 'png'}"
        im.convert(mode).save(path)
        arr = load_rgb_crop(path, 224, 256)
        assert arr.shape == (224, 224, 3) and arr.dtype == np.uint8
    shutil.copy(src, tmp_path / "copy.jpg")
    np.testing.assert_array_equal(load_rgb_crop(tmp_path / "copy.jpg", 224, 256), upright)


def test_device_decode_path_matches_cpu_path(lite0: Featurizer, tmp_path: Path) -> None:
    """The nvJPEG path (batched decode + crop/resize on the device), run here on the CPU."""
    paths = _photos(4)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(paths[0].read_bytes()[:1500])  # a JPEG that fails mid-decode
    ref, _ = lite0.embed_paths(paths)
    f = Featurizer("efficientnet-lite0", device="cpu", batch_size=5, gpu_decode=True)
    emb, errors = f.embed_paths([*paths, bad])
    assert list(errors) == [4]
    assert _cos(ref, emb[:4]).min() >= 0.99


def test_interrupted_embedding_resumes_without_duplicates(lite0: Featurizer, tmp_path: Path):
    """The embedding task's loop: missing -> iter_batches -> append -> compact, killed midway."""
    from worker.ml.embedding_store import EmbeddingStore

    paths = _photos(7)
    item_ids = np.arange(100, 107)

    def run(stop_after: int | None) -> None:
        store = EmbeddingStore(tmp_path / "emb", dim=lite0.dim)
        todo = store.missing(item_ids)
        todo_paths = [paths[int(i) - 100] for i in todo]
        for n, batch in enumerate(lite0.iter_batches(todo_paths)):
            if n == stop_after:
                return  # the worker dies here; the generator is abandoned
            store.append(todo[batch.indices], batch.embeddings)
        store.compact()

    run(stop_after=1)
    assert len(EmbeddingStore(tmp_path / "emb")) == 4
    run(stop_after=None)
    ids, mat = EmbeddingStore(tmp_path / "emb").load()
    assert ids.tolist() == item_ids.tolist() and mat.dtype == np.float16
    ref, _ = lite0.embed_paths(paths)
    assert _cos(ref, mat.astype(np.float32)).min() >= 0.999


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu(lite0: Featurizer) -> None:
    """fp16 autocast + nvJPEG decoding on the GPU give the CPU's embeddings."""
    paths = _photos(8)
    ref, _ = lite0.embed_paths(paths)
    gpu = Featurizer("efficientnet-lite0", device="cuda", batch_size=4)
    assert gpu.amp and gpu.gpu_decode
    emb, errors = gpu.embed_paths(paths)
    assert errors == {}
    assert _cos(ref, emb).min() >= 0.99


def test_mirror_augmentation_is_the_mean_over_the_mirror(lite0: Featurizer,
                                                         tmp_path: Path) -> None:
    """mirror=True embeds an image and its mirror image alike (the mean is flip-invariant) and
    stays close to, but not equal to, the plain embedding."""
    photo = _photos(1)[0]
    flipped = tmp_path / "flipped.png"  # lossless, so only the flip differs
    original = tmp_path / "original.png"
    with Image.open(photo) as im:
        im.convert("RGB").save(original)
        im.convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(flipped)
    mirror = Featurizer("efficientnet-lite0", device="cpu", batch_size=4, mirror=True)
    both, errors = mirror.embed_paths([original, flipped])
    plain, _ = lite0.embed_paths([original, flipped])
    assert errors == {}
    assert _cos(both[:1], both[1:])[0] >= 0.999
    assert 0.9 <= _cos(plain[:1], plain[1:])[0] < 0.999  # the backbone itself is not invariant
    assert np.allclose(both[0], (plain[0] + plain[1]) / 2, atol=1e-3 * np.abs(plain).max())
