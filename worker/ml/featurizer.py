"""Batched image -> embedding pipeline that keeps the backbone busy.

Throughput design (one code path for CPU and CUDA):
- compute streams: on CPU, one single-threaded forward per core, run concurrently. A 2-thread
  OpenMP forward stalls at every barrier as soon as anything else (decoding, another process)
  takes a core, while independent single-threaded streams just share the cores. Each CPU stream
  decodes its own next batch, so while one stream decodes the other computes: decoding overlaps
  the network with no third busy thread preempting it. On CUDA, decoder threads (Pillow and
  libjpeg-turbo release the GIL) fill batches ahead, and two streams let one batch's copy-back
  overlap the next batch's kernels;
- JPEGs: large ones decoded at reduced scale (draft mode), small ones by libjpeg-turbo with a
  SIMD resize (images.py); on CUDA, by nvJPEG on the GPU, where the CPU would be the limit;
- batches travel as uint8 NHWC (4x smaller than float) and are normalised on the device; NHWC
  permuted to NCHW is already channels-last, which oneDNN / cuDNN convolutions prefer;
- torch.inference_mode everywhere, BatchNorms folded into convolutions (backbones.py); on CUDA
  fp16 autocast, pinned host buffers, non-blocking copies and a bigger batch.
A bad file never stops a run: it becomes an error entry and the rest of the batch embeds.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import images
from .backbones import DEFAULT_BACKBONE, BackboneSpec, get_spec, load_backbone

__all__ = ["EmbeddedBatch", "Featurizer", "default_device"]

log = logging.getLogger(__name__)


def default_device() -> torch.device:
    """CUDA when present (the same code runs there, just faster), else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


@dataclass
class EmbeddedBatch:
    """One batch of results; `indices` are positions in the input that embedded successfully."""

    indices: np.ndarray  # int64 (k,)
    embeddings: np.ndarray  # float32 (k, dim)
    errors: dict[int, str] = field(default_factory=dict)  # position -> message

    def __len__(self) -> int:
        return len(self.indices) + len(self.errors)


@dataclass
class _Job:
    """A batch on its way through decode and compute."""

    positions: np.ndarray  # int64 positions in the caller's list
    buffer: torch.Tensor  # uint8 (n, S, S, 3) decoded crops, pinned on CUDA
    ok: np.ndarray  # bool (n,), False where decoding failed
    errors: dict[int, str] = field(default_factory=dict)
    raw: dict[int, bytearray] = field(default_factory=dict)  # JPEGs left for the GPU to decode
    futures: list[Future[None]] = field(default_factory=list)


def _error_message(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Featurizer:
    """Turns image files into float32 embeddings with a pretrained backbone from the registry."""

    def __init__(
        self,
        backbone: str = DEFAULT_BACKBONE,
        *,
        device: str | torch.device | None = None,
        batch_size: int | None = None,
        num_workers: int | None = None,
        weights_path: str | None = None,
        streams: int | None = None,
        amp: bool | None = None,
        gpu_decode: bool | None = None,
        mirror: bool = False,
    ) -> None:
        """Load the backbone; every argument left as None gets the device's sensible default.

        batch_size: images per forward (CPU 16, CUDA 256). streams: concurrent forwards (CPU:
        one per core; CUDA: 2). num_workers: decoder threads (CPU: 0 = each stream decodes its
        own batch; CUDA: cores - 1). amp: fp16 autocast (CUDA only by default). gpu_decode:
        nvJPEG decoding on the GPU (CUDA default). weights_path: see backbones.load_backbone.
        mirror: test-time augmentation, the mean of the image's and its horizontal mirror's
        embedding (twice the forward cost; every item of a store must be embedded alike).
        """
        self.spec: BackboneSpec = get_spec(backbone)
        self.backbone = self.spec.name
        self.dim = self.spec.embedding_dim
        self.device = torch.device(device) if device is not None else default_device()
        on_cuda = self.device.type == "cuda"
        if on_cuda and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        cores = _cpu_count()
        # A GPU is starved by small batches; on CPU, batches past ~16 images only spill caches.
        self.batch_size = int(batch_size) if batch_size else (256 if on_cuda else 16)
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.streams = max(1, int(streams)) if streams else (2 if on_cuda else cores)
        # Each CPU stream gets an equal share of the cores for torch's intra-op threads.
        self.threads_per_stream = max(1, cores // self.streams)
        if num_workers is None:
            # CPU: 0 = each compute stream decodes its own next batch. Decoding is a few % of the
            # work, and a separate decoder thread would only preempt the network (three busy
            # threads on two cores); CUDA: decoding is the bottleneck, use every core for it.
            num_workers = max(1, cores - 1) if on_cuda else 0
        self.num_workers = max(0, int(num_workers))
        self.amp = on_cuda if amp is None else bool(amp)
        self.mirror = bool(mirror)
        self.gpu_decode = (
            (on_cuda and images._OPS is not None) if gpu_decode is None else gpu_decode
        )
        self.model = load_backbone(self.backbone, weights_path=weights_path, device=self.device)
        self.model.to(memory_format=torch.channels_last)
        mean = torch.tensor(self.spec.mean, dtype=torch.float32) * 255.0
        std = torch.tensor(self.spec.std, dtype=torch.float32) * 255.0
        # x_norm = x * scale + shift: one fused multiply-add per pixel, on the device.
        self._scale = (1.0 / std).view(1, 3, 1, 1).to(self.device)
        self._shift = (-mean / std).view(1, 3, 1, 1).to(self.device)
        self._input_shape = (self.spec.input_size, self.spec.input_size, 3)

    def __repr__(self) -> str:
        return (
            f"Featurizer({self.backbone!r}, device={str(self.device)!r}, "
            f"batch_size={self.batch_size}, streams={self.streams}, num_workers={self.num_workers})"
        )

    # ------------------------------------------------------------------ public API

    def embed_paths(self, paths: Sequence[str | Path]) -> tuple[np.ndarray, dict[int, str]]:
        """All embeddings at once: float32 (len(paths), dim), NaN rows where a file failed."""
        out = np.full((len(paths), self.dim), np.nan, dtype=np.float32)
        errors: dict[int, str] = {}
        for batch in self.iter_batches(paths):
            out[batch.indices] = batch.embeddings
            errors.update(batch.errors)
        return out, errors

    def iter_batches(self, paths: Sequence[str | Path]) -> Iterator[EmbeddedBatch]:
        """Yield results batch by batch, in input order, so callers can store and report progress.

        Never raises for one bad file. Work continues in the background while the caller handles
        a batch (e.g. writes it to the store). Stopping iteration early cancels pending work.
        """
        paths = list(paths)
        n = len(paths)
        if n == 0:
            return
        # Small jobs still get split across every compute stream.
        bs = max(1, min(self.batch_size, math.ceil(n / self.streams)))
        caller_threads = torch.get_num_threads()
        starts = iter(range(0, n, bs))
        workers = self.num_workers
        slices = max(1, min(workers, bs))  # each batch is decoded by up to this many threads
        decode_ahead = max(self.streams + 1, math.ceil(2 * workers / slices) + 1)
        decoders = (
            ThreadPoolExecutor(workers, "labeler-decode", torch.set_num_threads, (1,))
            if workers
            else None
        )
        computers = ThreadPoolExecutor(
            self.streams,
            "labeler-forward",
            initializer=torch.set_num_threads,
            initargs=(self.threads_per_stream,),
        )
        decoding: deque[_Job] = deque()
        computing: deque[Future[EmbeddedBatch]] = deque()
        try:
            while True:
                while len(decoding) < decode_ahead:
                    start = next(starts, None)
                    if start is None:
                        break
                    stop = min(start + bs, n)
                    decoding.append(self._submit_decode(decoders, paths, start, stop, slices))
                while len(computing) < self.streams and decoding:
                    computing.append(computers.submit(self._compute, decoding.popleft(), paths))
                if not computing:
                    return
                yield computing.popleft().result()
        finally:
            for job in decoding:
                for fut in job.futures:
                    fut.cancel()
            for fut in computing:
                fut.cancel()
            if decoders is not None:
                decoders.shutdown(wait=True, cancel_futures=True)
            computers.shutdown(wait=True, cancel_futures=True)
            _restore_torch_threads(caller_threads)

    def embed_uint8(self, batch: np.ndarray | torch.Tensor) -> np.ndarray:
        """Embed already-decoded uint8 (B, S, S, 3) crops: the compute half of the pipeline.

        The benchmark's forward-only measurement calls this, so both numbers share the code.
        """
        tensor = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(np.asarray(batch))
        return self._forward(tensor).numpy()

    def embed_decoded(self, crops: np.ndarray, streams: int | None = None) -> np.ndarray:
        """Embed pre-decoded uint8 (N, S, S, 3) crops with the same batches and compute streams
        as iter_batches: the pipeline minus decoding (the benchmark's forward-only number).

        `streams=1` runs one stream with all cores as torch intra-op threads (plain PyTorch).
        """
        streams = self.streams if streams is None else max(1, int(streams))
        per_stream = self.threads_per_stream if streams == self.streams else _cpu_count() // streams
        caller_threads = torch.get_num_threads()
        pool = ThreadPoolExecutor(
            streams, "labeler-forward", initializer=torch.set_num_threads, initargs=(per_stream,)
        )
        bs = self.batch_size
        try:
            futures = [
                pool.submit(self._forward, torch.from_numpy(crops[i : i + bs]))
                for i in range(0, len(crops), bs)
            ]
            parts = [f.result().numpy() for f in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            _restore_torch_threads(caller_threads)
        return np.concatenate(parts) if parts else np.empty((0, self.dim), np.float32)

    def decode(self, path: str | Path) -> np.ndarray:
        """Decode one file exactly as the CPU pipeline does (uint8 (S, S, 3))."""
        s = self.spec
        return images.load_rgb_crop(path, s.input_size, s.resize_size, s.interpolation)

    # ------------------------------------------------------------------ internals

    def _submit_decode(
        self, pool: ThreadPoolExecutor | None, paths: list, start: int, stop: int, slices: int
    ) -> _Job:
        """A job for paths[start:stop]; decoding starts now on the pool (None: in _compute)."""
        count = stop - start
        pin = self.device.type == "cuda"
        job = _Job(
            positions=np.arange(start, stop, dtype=np.int64),
            buffer=torch.empty((count, *self._input_shape), dtype=torch.uint8, pin_memory=pin),
            ok=np.ones(count, dtype=bool),
        )
        if pool is None:
            return job
        step = math.ceil(count / slices)
        for a in range(0, count, step):
            b = min(a + step, count)
            job.futures.append(pool.submit(self._decode_slice, paths, job, a, b))
        return job

    def _decode_slice(self, paths: list, job: _Job, a: int, b: int) -> None:
        s = self.spec
        arr = job.buffer.numpy()
        for i in range(a, b):
            path = paths[int(job.positions[i])]
            try:
                if self.gpu_decode:
                    data = images.read_bytes(path)
                    if images.is_jpeg(data) and images.exif_orientation(data) == 1:
                        job.raw[i] = data  # decoded on the GPU by the compute stream
                        continue
                images.load_rgb_crop(path, s.input_size, s.resize_size, s.interpolation, arr[i])
            except Exception as exc:  # noqa: BLE001 - any failure is a per-file error
                job.ok[i] = False
                job.errors[int(job.positions[i])] = _error_message(exc)

    def _compute(self, job: _Job, paths: list) -> EmbeddedBatch:
        if self.num_workers == 0:
            self._decode_slice(paths, job, 0, len(job.positions))
        for fut in job.futures:
            fut.result()
        if job.raw:
            device_batch = self._decode_on_device(job)
        else:
            device_batch = job.buffer
        if job.ok.all():
            positions = job.positions
        else:
            positions = job.positions[job.ok]
            device_batch = device_batch[torch.from_numpy(job.ok).to(device_batch.device)]
        if len(positions) == 0:
            emb = np.empty((0, self.dim), dtype=np.float32)
        else:
            emb = self._forward(device_batch).numpy()
        return EmbeddedBatch(indices=positions, embeddings=emb, errors=dict(job.errors))

    def _decode_on_device(self, job: _Job) -> torch.Tensor:
        """Decode the batch's JPEGs with nvJPEG and crop/resize them on the GPU."""
        s = self.spec
        batch = job.buffer.to(self.device, non_blocking=True)
        order = sorted(job.raw)
        try:
            decoded = images.decode_jpegs_on_device([job.raw[i] for i in order], self.device)
            pairs = list(zip(order, decoded, strict=True))
        except Exception:  # noqa: BLE001 - one bad file fails the whole call: isolate it
            pairs = []
            for i in order:
                try:
                    pairs.append((i, images.decode_jpegs_on_device([job.raw[i]], self.device)[0]))
                except Exception:  # noqa: BLE001 - fall back to the CPU decoder
                    try:
                        crop = images.decode_rgb_crop(
                            job.raw[i], s.input_size, s.resize_size, s.interpolation
                        )
                        batch[i] = torch.from_numpy(crop).to(self.device)
                    except Exception as exc:  # noqa: BLE001
                        job.ok[i] = False
                        job.errors[int(job.positions[i])] = _error_message(exc)
        for i, img in pairs:
            crop = images.crop_resize_chw(img, s.input_size, s.resize_size, s.interpolation)
            batch[i] = crop.permute(1, 2, 0)
        return batch

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC batch (host or device) -> float32 embeddings on the host."""
        with torch.inference_mode():
            x = batch.to(self.device, non_blocking=True).permute(0, 3, 1, 2)
            # NHWC memory permuted to NCHW is channels-last; keep it that way for the convs.
            x = torch.addcmul(self._shift, x.float(), self._scale).contiguous(
                memory_format=torch.channels_last
            )
            ctx = (
                torch.autocast(device_type=self.device.type, dtype=torch.float16)
                if self.amp
                else nullcontext()
            )
            with ctx:
                out = self.model(x).float()
                if self.mirror:  # flip the width axis; the mean is invariant to the mirror
                    flipped = x.flip(3).contiguous(memory_format=torch.channels_last)
                    out = (out + self.model(flipped).float()) / 2
            return out.cpu()


def _restore_torch_threads(count: int) -> None:
    """Undo the per-thread settings' side effect on torch's process-wide default thread count.

    torch.set_num_threads in a worker thread also changes the default for threads created later;
    setting it back from a short-lived thread leaves the caller's own setting untouched.
    """
    t = threading.Thread(target=torch.set_num_threads, args=(count,), daemon=True)
    t.start()
    t.join()
