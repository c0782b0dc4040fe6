"""Project settings for leads: classes, learning settings, backbone switch, members."""

from __future__ import annotations

import pytest
from django.urls import reverse

from labeler.annotations.models import Annotation
from labeler.annotations.services import save_annotation
from labeler.projects.models import Project, Role
from labeler.projects.services import set_member

from .conftest import real_subset

pytestmark = pytest.mark.django_db


@pytest.fixture
def lead_client(client, make_user, project_factory):
    project = project_factory("Settings", classes=["cat", "dog", "bird"])
    lead = make_user("lead")
    set_member(project, lead, Role.LEAD)
    client.force_login(lead)
    return client, project, lead


def post(client, project, **data):
    response = client.post(reverse("projects:settings", args=[project.pk]), data, follow=True)
    msgs = list(response.context["messages"])
    # Refused input re-renders the page with the message and a 400; success redirects.
    assert response.status_code == (400 if any(m.level_tag == "error" for m in msgs) else 200)
    return [str(m) for m in msgs]


def test_only_leads_reach_settings(client, make_user, project_factory):
    project = project_factory()
    annotator, stranger = make_user("ann"), make_user("stranger")
    set_member(project, annotator, Role.ANNOTATOR)
    client.force_login(annotator)
    assert client.get(reverse("projects:settings", args=[project.pk])).status_code == 403
    assert client.post(reverse("projects:settings", args=[project.pk]),
                       {"action": "add_class", "name": "x"}).status_code == 403
    client.force_login(stranger)
    assert client.get(reverse("projects:settings", args=[project.pk])).status_code == 404
    assert project.classes.count() == 3


def test_classes_rename_hotkeys_reorder_add(lead_client):
    client, project, _ = lead_client
    cat, dog, bird = project.classes.all()
    assert client.get(reverse("projects:settings", args=[project.pk])).status_code == 200
    assert post(client, project, action="edit_class", label=cat.pk, name="kitten", hotkey="k") == [
        "Class kitten saved."]
    msgs = post(client, project, action="edit_class", label=dog.pk, name="dog", hotkey="k")
    assert "already used" in msgs[0]
    assert "labeling command" in post(client, project, action="edit_class", label=dog.pk,
                                      name="dog", hotkey="s")[0]
    assert "already a class" in post(client, project, action="edit_class", label=dog.pk,
                                     name="kitten", hotkey="2")[0]
    post(client, project, action="reorder", order=f"{bird.pk},{cat.pk},{dog.pk}")
    assert [c.name for c in project.classes.all()] == ["bird", "kitten", "dog"]
    assert "every class" in post(client, project, action="reorder", order=f"{bird.pk}")[0]
    post(client, project, action="add_class", name="fish")
    fish = project.classes.get(name="fish")
    assert fish.hotkey and fish.hotkey not in {"k", "2", "3"}


def test_merge_moves_labels(lead_client, add_images, make_user):
    client, project, lead = lead_client
    cat, dog, _ = project.classes.all()
    items = add_images(project, 3)
    save_annotation(items[0], cat, lead, trigger_retrain=False)
    save_annotation(items[1], dog, lead, trigger_retrain=False)
    msgs = post(client, project, action="merge", source=cat.pk, target=dog.pk)
    assert msgs == ["Merged cat into dog: 1 labels moved."]
    assert set(Annotation.objects.values_list("label__name", flat=True)) == {"dog"}
    assert not project.classes.filter(name="cat").exists()


def test_learning_settings_validated(lead_client):
    client, project, _ = lead_client
    ok = dict(action="settings", query_strategy="margin", retrain_every=5, audit_share=0.2,
              overlap=2, lease_seconds=60)
    assert post(client, project, **ok) == ["Settings saved."]
    project.refresh_from_db()
    assert (project.query_strategy, project.retrain_every, project.audit_share, project.overlap,
            project.lease_seconds) == ("margin", 5, 0.2, 2, 60)
    assert "Unknown strategy" in post(client, project, **{**ok, "query_strategy": "psychic"})[0]
    assert "audit share" in post(client, project, **{**ok, "audit_share": 0.9})[0]
    project.refresh_from_db()
    assert project.query_strategy == "margin"


def test_members_and_roles(lead_client, make_user):
    client, project, lead = lead_client
    make_user("newbie")
    post(client, project, action="member", username="newbie", role=Role.ANNOTATOR)
    assert project.memberships.get(user__username="newbie").role == Role.ANNOTATOR
    post(client, project, action="member", username="newbie", role=Role.LEAD)
    assert project.memberships.get(user__username="newbie").role == Role.LEAD
    assert "No user" in post(client, project, action="member", username="ghost", role="lead")[0]
    membership = project.memberships.get(user__username="newbie")
    post(client, project, action="remove_member", membership=membership.pk)
    assert not project.memberships.filter(user__username="newbie").exists()


def test_backbone_switch_with_missing_weights_is_refused(lead_client, tmp_path, settings):
    client, project, _ = lead_client
    settings.LABELER_WEIGHTS_DIR = str(tmp_path)
    msgs = post(client, project, action="backbone", backbone="resnet18",
                weights_path=str(tmp_path / "nope.pth"))
    assert "nope.pth" in msgs[0]
    assert "no-such-net" in post(client, project, action="backbone", backbone="no-such-net")[0]
    project.refresh_from_db()
    assert project.pending_backbone == "" and project.backbone == "efficientnet-lite0"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_backbone_switch_embeds_in_background_then_swaps(
    redis_url, make_user, project_factory, tmp_path, settings
):
    """The old backbone keeps serving while the new one is embedded; then the project swaps."""
    import torch
    import torchvision

    from labeler.items.importing import import_folder
    from labeler.projects.services import change_backbone
    from labeler.training.embedding import embed_now
    from labeler.training.models import Job
    from labeler.training.stores import store_for
    from worker.ml.backbones import get_spec

    photos = real_subset(tmp_path / "photos", classes=2, per_class=4)
    project = project_factory("Switch", classes=["a", "b"])
    import_folder(project, photos)
    embed_now(project)
    project.refresh_from_db()
    assert len(store_for(project.pk, "efficientnet-lite0")) == 8

    settings.LABELER_WEIGHTS_DIR = str(tmp_path)  # custom weights come from this folder only
    weights = tmp_path / "mobilenet_v3_large.pth"
    torch.save(torchvision.models.mobilenet_v3_large(weights=None).state_dict(), weights)
    assert change_backbone(project, "mobilenet_v3_large", str(weights)) is True
    project.refresh_from_db()
    assert project.backbone == "efficientnet-lite0"          # still serving the old one
    assert project.pending_backbone == "mobilenet_v3_large"

    result = embed_now(project, Job.Kind.SWITCH_BACKBONE)
    assert result["swapped"] is True
    project = Project.objects.get(pk=project.pk)
    assert (project.backbone, project.pending_backbone) == ("mobilenet_v3_large", "")
    assert project.backbone_weights == str(weights)
    ids, matrix = store_for(project.pk, "mobilenet_v3_large").load()
    assert len(ids) == 8 and matrix.shape[1] == get_spec("mobilenet_v3_large").embedding_dim
    assert len(store_for(project.pk, "efficientnet-lite0")) == 8  # old embeddings untouched
