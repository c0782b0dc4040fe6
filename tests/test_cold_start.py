"""The first items served are chosen by the strategy's cold start, not at random.

Before the first label there is no model, so nothing ranks the pool unless the worker does it
when embedding finishes; then the first ``retrain_every`` items of the ranking should cover the
embedding's clusters (TypiClust), which is what makes the first labels count.
"""

from __future__ import annotations

import numpy as np
import pytest

from labeler.annotations.queue import next_items
from labeler.items.models import UNRANKED, Item
from labeler.projects.models import Role
from labeler.projects.services import set_member
from labeler.training.models import Job

from .conftest import jpeg_bytes


@pytest.fixture
def unlabeled_project(db, labeler_dirs, make_user, project_factory):
    """60 embedded, unlabeled items in 3 well separated clusters (20 each)."""
    from labeler.items.importing import Importer
    from labeler.training.stores import store_for

    lead = make_user("lead")
    project = project_factory("Cold", classes=["a", "b", "c"], lead=lead, retrain_every=3,
                              audit_share=0.0)
    importer = Importer(project)
    items = [importer.add(f"p{i}.jpg", jpeg_bytes((i, 2 * i, 3 * i))) for i in range(60)]
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 32)).astype(np.float32) * 4
    cluster = np.arange(60) % 3
    X = (centres[cluster] + rng.normal(size=(60, 32))).astype(np.float32)
    store_for(project.pk, project.backbone).append(np.array([it.pk for it in items]), X)
    return project, lead, {it.pk: int(c) for it, c in zip(items, cluster, strict=True)}


def test_no_label_retrain_ranks_a_covering_first_batch(unlabeled_project, make_user):
    from labeler.training.retrain import retrain_now

    project, lead, cluster_of = unlabeled_project
    assert retrain_now(project) is None  # no model without labels...
    ranked = list(Item.objects.filter(project=project, query_rank__lt=UNRANKED)
                  .order_by("query_rank").values_list("pk", flat=True))
    assert len(ranked) == 60  # ...but the pool is ranked (all of it: fewer than 300 items)
    # the first retrain_every (3) items cover the 3 clusters
    assert sorted(cluster_of[pk] for pk in ranked[:3]) == [0, 1, 2]
    annotator = make_user("ann")
    set_member(project, annotator, Role.ANNOTATOR)
    served = next_items(project, annotator, n=3)
    assert [it.pk for it in served] == ranked[:3]  # and served in that order


def test_embedding_done_without_labels_requests_the_cold_start_ranking(unlabeled_project,
                                                                       redis_url):
    from labeler.training.embedding import retrain_after_embedding

    project, _, _ = unlabeled_project
    assert retrain_after_embedding(project, swapped=False) is True
    assert Job.objects.filter(project=project, kind=Job.Kind.RETRAIN,
                              status=Job.State.QUEUED).exists()
