"""A project with synthetic embeddings under two backbones, labelled in rounds and retrained by
the product's own retrain code (no Celery needed: the task body runs in the test process).

Used by the version-comparison, single-CV-number and map tests. The embeddings are noisy class
clusters (classes overlap), so versions differ in accuracy and out-of-fold predictions disagree
with some labels; a second "backbone" sees the same latent classes through another projection.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from django.conf import settings

from labeler.annotations.models import Annotation
from labeler.items.models import Item
from labeler.projects.models import Project

CLASSES = ("cat", "dog", "bird")
BACKBONES = ("efficientnet-lite0", "efficientnet-lite1")


def make_items(project: Project, n: int) -> list[Item]:
    """n items without image files (the retrain and the queue only need rows and embeddings)."""
    Item.objects.bulk_create(
        Item(project=project, image=f"items/{project.pk}/{i}.jpg", original_name=f"p{i}.jpg",
             sha256=f"{project.pk:08x}{i:056x}", width=8, height=8)
        for i in range(n)
    )
    return list(Item.objects.filter(project=project).order_by("pk"))


def embed(project: Project, items: list[Item], backbone: str, seed: int = 0,
          noise: float = 1.6) -> np.ndarray:
    """Store synthetic embeddings for `items` under `backbone`; returns the true classes."""
    from labeler.training.stores import store_for

    rng = np.random.default_rng(seed)
    # The same classes under every backbone, in an order unrelated to which items are audited.
    truth = np.random.default_rng(2024).permutation(np.arange(len(items)) % len(CLASSES))
    centres = rng.normal(size=(len(CLASSES), 24))
    X = centres[truth] + noise * rng.normal(size=(len(items), 24))
    store_for(project.pk, backbone).append(np.array([i.pk for i in items]), X.astype(np.float32))
    return truth


def label(project: Project, items: list[Item], truth: np.ndarray, user, *, audit_every: int,
          flip_every: int = 0) -> None:
    """Label `items` (their true class, every `flip_every`-th one wrong), every
    `audit_every`-th one as an audit item."""
    from labeler.annotations.services import save_annotation

    classes = list(project.classes.order_by("order", "pk"))
    index = {it.pk: k for k, it in enumerate(Item.objects.filter(project=project).order_by("pk"))}
    for j, item in enumerate(items):
        k = int(truth[index[item.pk]])
        if flip_every and j % flip_every == flip_every - 1:
            k = (k + 1) % len(classes)
        annotation, _ = save_annotation(item, classes[k], user, trigger_retrain=False)
        if audit_every and j % audit_every == 0:
            Annotation.objects.filter(pk=annotation.pk).update(is_audit=True)


def retrain(project: Project) -> dict:
    """The retrain task's body, with one BLAS thread as the task runs it."""
    from threadpoolctl import threadpool_limits

    from labeler.training.retrain import retrain_now

    project.refresh_from_db()
    with threadpool_limits(limits=1, user_api="blas"):
        result = retrain_now(project)
    assert result is not None
    return result


def switch_backbone(project: Project, backbone: str) -> None:
    Project.objects.filter(pk=project.pk).update(backbone=backbone)
    project.refresh_from_db()


def drop_store(project: Project, backbone: str) -> None:
    shutil.rmtree(Path(settings.EMBEDDINGS_ROOT) / str(project.pk) / backbone)


def three_versions(project: Project, user) -> dict:
    """v1, v2 on backbone A, v3 on backbone B; 150 items, 90 labelled, a third audit items."""
    items = make_items(project, 150)
    truth = embed(project, items, BACKBONES[0], seed=0)
    embed(project, items, BACKBONES[1], seed=1, noise=1.2)
    label(project, items[:30], truth, user, audit_every=3, flip_every=7)
    v1 = retrain(project)
    label(project, items[30:60], truth, user, audit_every=3, flip_every=7)
    v2 = retrain(project)
    switch_backbone(project, BACKBONES[1])
    label(project, items[60:90], truth, user, audit_every=3, flip_every=7)
    v3 = retrain(project)
    return {"items": items, "truth": truth, "results": [v1, v2, v3]}
