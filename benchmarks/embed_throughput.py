"""Embedding throughput: files on disk -> stored embeddings, against the network alone.

Prints one JSON object:
- pipeline_img_per_s: image files -> Featurizer.iter_batches -> EmbeddingStore.append/compact in a
  temporary folder (the product's own code, exactly as the embedding task runs it);
- forward_only_img_per_s: the same Featurizer (same model, batch size and compute streams) on
  crops decoded beforehand, i.e. the pipeline minus decoding and storage;
- ratio = pipeline / forward-only: how well decoding and storage hide behind the network.
Runs alternate (--repeats pairs); rates are medians and the ratio is the median of the paired
ratios, since other processes on a small machine can slow any single run. Also reported:
cpu_time_ratio (CPU seconds per image, forward-only / pipeline: the share of the pipeline's CPU
work that is the network, insensitive to other load) and a plain single-stream PyTorch forward
(all cores as intra-op threads) for reference.

    python benchmarks/embed_throughput.py [--data DIR] [--limit N] [--backbone NAME]
        [--device cpu|cuda] [--batch-size B]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from worker.ml.backbones import DEFAULT_BACKBONE, available_backbones  # noqa: E402
from worker.ml.embedding_store import EmbeddingStore  # noqa: E402
from worker.ml.featurizer import Featurizer  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "clothing-small"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def list_images(root: Path, limit: int | None) -> list[Path]:
    """Image files under root; with a limit, an evenly spread sample (covers every class)."""
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if limit and limit < len(files):
        idx = np.linspace(0, len(files) - 1, limit).round().astype(int)
        files = [files[i] for i in idx]
    return files


def run_pipeline(featurizer: Featurizer, paths: list[Path]) -> tuple[float, float, int, int]:
    """(wall s, CPU s) for files -> embeddings -> compacted store, images stored, errors."""
    ids = np.arange(len(paths), dtype=np.int64)
    with tempfile.TemporaryDirectory(prefix="labeler-bench-") as tmp:
        store = EmbeddingStore(Path(tmp) / "store", dim=featurizer.dim)
        errors = 0
        t0, c0 = time.perf_counter(), time.process_time()
        for batch in featurizer.iter_batches(paths):
            store.append(ids[batch.indices], batch.embeddings)
            errors += len(batch.errors)
        store.compact()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        stored = len(store)
    return wall, cpu, stored, errors


def run_forward(
    featurizer: Featurizer, crops: np.ndarray, streams: int | None = None
) -> tuple[float, float]:
    """(wall s, CPU s) for the network alone on pre-decoded crops."""
    t0, c0 = time.perf_counter(), time.process_time()
    featurizer.embed_decoded(crops, streams=streams)
    if featurizer.device.type == "cuda":
        torch.cuda.synchronize(featurizer.device)
    return time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--limit", type=int, default=512, help="number of images (0 = all)")
    ap.add_argument("--backbone", default=DEFAULT_BACKBONE, choices=available_backbones())
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--streams", type=int, default=None, help="concurrent forward streams")
    ap.add_argument("--num-workers", type=int, default=None, help="decoder threads")
    ap.add_argument("--repeats", type=int, default=3, help="alternating timed pairs of runs")
    ap.add_argument("--weights", default=None, help="weights file (torchvision backbones)")
    args = ap.parse_args(argv)

    paths = list_images(args.data, args.limit or None)
    if not paths:
        ap.error(f"no images under {args.data}")
    featurizer = Featurizer(
        args.backbone,
        device=args.device,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        streams=args.streams,
        weights_path=args.weights,
    )
    load_before = os.getloadavg()[0]
    # Warm-up: oneDNN / cuDNN pick and cache their kernels on the first batches of each shape.
    warm = paths[: featurizer.batch_size * featurizer.streams * 2]
    for _ in featurizer.iter_batches(warm):
        pass
    # Forward-only's input, decoded like the pipeline's decoder threads do (one torch thread).
    with ThreadPoolExecutor(1, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        c0 = time.process_time()
        crops = np.stack(list(pool.map(featurizer.decode, paths)))
        decode_ms = (time.process_time() - c0) / len(paths) * 1000  # CPU ms per image
    featurizer.embed_decoded(crops[: featurizer.batch_size * featurizer.streams * 2])

    pipe, fwd, single = [], [], []
    stored = errors = 0
    for _ in range(max(1, args.repeats)):  # alternate, so drift in machine load hits both
        fwd.append(run_forward(featurizer, crops))
        wall, cpu, stored, errors = run_pipeline(featurizer, paths)
        pipe.append((wall, cpu))
    if featurizer.device.type == "cpu" and featurizer.streams > 1:
        single.append(run_forward(featurizer, crops, streams=1))

    median = statistics.median
    pipeline = stored / median(w for w, _ in pipe)
    forward = len(crops) / median(w for w, _ in fwd)
    # Each pipeline run against the forward-only run just before it; the median pair is robust
    # to other processes stealing the cores during one run.
    pairs = list(zip(pipe, fwd, strict=True))
    ratio = median((stored / p[0]) / (len(crops) / f[0]) for p, f in pairs)
    cpu_ratio = median((f[1] / len(crops)) / (p[1] / stored) for p, f in pairs)
    result = {
        "backbone": featurizer.backbone,
        "device": str(featurizer.device),
        "device_name": (
            torch.cuda.get_device_name(featurizer.device)
            if featurizer.device.type == "cuda"
            else platform.processor() or platform.machine()
        ),
        "images": len(paths),
        "stored": stored,
        "errors": errors,
        "batch_size": featurizer.batch_size,
        "streams": featurizer.streams,
        "decode_workers": featurizer.num_workers,
        "amp": featurizer.amp,
        "gpu_decode": featurizer.gpu_decode,
        "cpu_cores": len(os.sched_getaffinity(0)),
        "pipeline_img_per_s": round(pipeline, 2),
        "forward_only_img_per_s": round(forward, 2),
        "ratio": round(ratio, 3),
        "cpu_time_ratio": round(cpu_ratio, 3),
        "decode_cpu_ms_per_img": round(decode_ms, 2),
        "pipeline_runs_s": [round(w, 2) for w, _ in pipe],
        "forward_only_runs_s": [round(w, 2) for w, _ in fwd],
        "load_avg_1min_before": round(load_before, 2),
        "load_avg_1min_after": round(os.getloadavg()[0], 2),
    }
    if single:
        result["forward_only_single_stream_img_per_s"] = round(len(crops) / single[0][0], 2)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
