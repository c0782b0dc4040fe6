"""Django admin (issue 17.7): plural of label class, model versions as read-only records, and an
items list with current label, prediction, confidence and a thumbnail, filterable by them."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from labeler.annotations.models import Annotation
from labeler.annotations.services import save_annotation
from labeler.items.models import Item
from labeler.projects.models import Role
from labeler.projects.services import set_member
from labeler.training.models import ModelVersion, Status

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("root", staff=True))
    return client


def test_label_classes_plural(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "Label classes" in html and "Label classs" not in html


def test_model_versions_are_read_only_records(admin_client, project_factory):
    project = project_factory("Records")
    version = ModelVersion.objects.create(project=project, number=1, status=Status.READY,
                                          backbone="efficientnet-lite0", strategy="auto",
                                          labels_used=40)
    change = reverse("admin:training_modelversion_change", args=[version.pk])
    assert admin_client.get(reverse("admin:training_modelversion_add")).status_code == 403
    page = admin_client.get(change)
    assert page.status_code == 200 and 'name="status"' not in page.content.decode()
    response = admin_client.post(change, {"project": project.pk, "number": 7, "status": "failed",
                                          "labels_used": 1, "backbone": "x", "strategy": "y"})
    assert response.status_code == 403
    delete = reverse("admin:training_modelversion_delete", args=[version.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    version.refresh_from_db()
    assert (version.number, version.status, version.labels_used) == (1, Status.READY, 40)


def test_items_list_shows_and_filters_current_label_prediction_confidence(
    admin_client, make_user, project_factory, add_images
):
    from labeler.annotations.current import current_labels

    lead, a, b, c = (make_user(n) for n in ("lead", "ann-a", "ann-b", "ann-c"))
    project = project_factory("Admin items", classes=["cat", "dog", "bird"], lead=lead, overlap=3)
    for user in (a, b, c):
        set_member(project, user, Role.ANNOTATOR)
    cat, dog, bird = project.classes.all()
    items = add_images(project, 5)
    # Majority: dog (2 of 3). A lead's label wins over a majority. Ties: the latest label.
    for user, label in ((a, cat), (b, dog), (c, dog)):
        save_annotation(items[0], label, user, trigger_retrain=False)
    for user, label in ((a, cat), (b, cat)):
        save_annotation(items[1], label, user, trigger_retrain=False)
    save_annotation(items[1], bird, lead, trigger_retrain=False)
    save_annotation(items[2], cat, a, trigger_retrain=False)
    save_annotation(items[2], bird, b, trigger_retrain=False)
    audit = save_annotation(items[3], dog, a, trigger_retrain=False)[0]
    Annotation.objects.filter(pk=audit.pk).update(is_audit=True)
    Item.objects.filter(pk=items[0].pk).update(predicted_class=dog, predicted_confidence=0.97)
    Item.objects.filter(pk=items[1].pk).update(predicted_class=cat, predicted_confidence=0.6)
    expected, _ = current_labels(project)
    assert expected[items[0].pk] == dog.pk and expected[items[1].pk] == bird.pk
    assert expected[items[2].pk] == bird.pk

    url = reverse("admin:items_item_changelist")
    html = admin_client.get(url).content.decode()
    assert "column-current_label" in html and "column-thumbnail" in html
    assert reverse("insights:thumb", args=[items[0].pk]) in html and "97 %" in html

    def listed(query: str) -> set[int]:
        page = admin_client.get(url + query).content.decode()
        return {int(i) for i in re.findall(r'name="_selected_action" value="(\d+)"', page)}

    for label in (cat, dog, bird):
        want = {i for i, lab in expected.items() if lab == label.pk}
        assert listed(f"?current_label={label.pk}") == want, label.name
    assert listed("?current_label=none") == {items[4].pk}
    assert listed(f"?predicted_class__id__exact={dog.pk}") == {items[0].pk}
    assert listed("?confidence=ge95") == {items[0].pk}
    assert listed("?confidence=50-80") == {items[1].pk}
    assert listed("?audit=yes") == {items[3].pk}
    thumb = admin_client.get(reverse("insights:thumb", args=[items[0].pk]))
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/jpeg"
