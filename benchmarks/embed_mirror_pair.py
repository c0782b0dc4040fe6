"""Embed a simulate data folder twice in one pass: plain, and the mirror TTA (mean of the image's
and its horizontal mirror's embedding), into two ``simulate`` caches.

One decode feeds both forwards, so measuring test-time augmentation costs one extra forward, not
a second decode of every image.  The plain cache is exactly what ``simulate`` writes (same store
layout and file signature), the mirror cache what ``simulate --mirror`` writes, so both are read
back by :func:`worker.ml.simulation.load_embedded` without re-embedding.

    python benchmarks/embed_mirror_pair.py --data DIR [--label-set NAME]
        [--cache-dir var/cache/simulate] [--backbone NAME]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from worker.ml.backbones import DEFAULT_BACKBONE, get_spec  # noqa: E402
from worker.ml.datasets import scan_dataset  # noqa: E402
from worker.ml.embedding_store import EmbeddingStore  # noqa: E402
from worker.ml.featurizer import Featurizer  # noqa: E402
from worker.ml.simulation import (  # noqa: E402
    DEFAULT_CACHE_DIR,
    _file_signature,
    cache_folder,
)


class _PairFeaturizer(Featurizer):
    """Returns [plain | mirror-mean] side by side (2 * dim columns) from one decoded batch."""

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            x = batch.to(self.device).permute(0, 3, 1, 2)
            x = torch.addcmul(self._shift, x.float(), self._scale).contiguous(
                memory_format=torch.channels_last)
            plain = self.model(x).float()
            flipped = self.model(x.flip(3).contiguous(memory_format=torch.channels_last)).float()
            return torch.cat([plain, (plain + flipped) / 2], dim=1).cpu()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--label-set", default=None)
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE)
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR))
    args = parser.parse_args(argv)
    name = get_spec(args.backbone).name
    _, pool, test = scan_dataset(args.data, args.label_set)
    feat = _PairFeaturizer(args.backbone)
    d = feat.dim
    t0 = time.time()
    count = 0
    for split, split_name in ((pool, "pool"), (test, "heldout")):
        stores = []
        for mirror in (False, True):
            folder = cache_folder(args.cache_dir, args.data, name, mirror=mirror) / split_name
            folder.mkdir(parents=True, exist_ok=True)
            store = EmbeddingStore(folder)
            store.clear()
            (folder / "errors.json").unlink(missing_ok=True)
            (folder / "files.sha1").write_text(_file_signature(split.paths))
            stores.append(store)
        errors: dict[str, str] = {}
        for batch in feat.iter_batches(split.paths):
            if len(batch.indices):
                stores[0].append(batch.indices, batch.embeddings[:, :d])
                stores[1].append(batch.indices, batch.embeddings[:, d:])
            errors.update({str(k): v for k, v in batch.errors.items()})
            count += len(batch)
        for store in stores:
            (store.root / "errors.json").write_text(json.dumps(errors))
            store.compact()
    print(json.dumps({"data": args.data, "images": count,
                      "seconds": round(time.time() - t0, 1),
                      "images_per_s": round(count / (time.time() - t0), 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
