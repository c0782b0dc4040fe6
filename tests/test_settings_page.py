"""The settings page (issue 17.8): no torch in the web process, the lead's tab bar, a labelled
class table, merges that never default to a class into itself, reordering by ↑ / ↓ or a
validated full order, and a favicon."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
from django.urls import reverse

from labeler.projects.models import Role
from labeler.projects.services import set_member

from .conftest import REPO

pytestmark = pytest.mark.django_db

# A fresh web process: set up Django on an empty database, import the settings view, render
# the settings page, and report whether torch (or modAL, which imports it) got imported.
FRESH_PROCESS = textwrap.dedent("""
    import json, sys, time
    import django
    django.setup()
    from django.core.management import call_command
    call_command("migrate", verbosity=0)
    import labeler.projects.settings_views  # noqa: F401
    after_import = "torch" in sys.modules
    from django.contrib.auth import get_user_model
    from django.test import Client
    from labeler.projects.services import create_project
    lead = get_user_model().objects.create_user("lead", password="pw-for-tests-1")
    project = create_project("Fresh", ["cat", "dog"], lead=lead)
    client = Client(HTTP_HOST="127.0.0.1")  # outside the test runner: a real allowed host
    client.force_login(lead)
    started = time.perf_counter()
    response = client.get(f"/projects/{project.pk}/settings/")
    seconds = time.perf_counter() - started
    posted = client.post(f"/projects/{project.pk}/settings/", {
        "action": "settings", "query_strategy": "margin", "retrain_every": 5,
        "audit_share": 0.1, "overlap": 1, "lease_seconds": 300})
    print(json.dumps({
        "status": response.status_code, "posted": posted.status_code, "seconds": seconds,
        "torch_after_import": after_import,
        "torch": "torch" in sys.modules, "modAL": "modAL" in sys.modules,
        "strategies": "margin" in response.content.decode(),
        "backbones": "efficientnet-lite1" in response.content.decode(),
    }))
""")


def test_settings_page_never_imports_torch(tmp_path):
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="labeler.settings",
               LABELER_DATA_DIR=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3")
    out = subprocess.run([sys.executable, "-c", FRESH_PROCESS], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == 200 and result["posted"] == 302
    assert result["strategies"] and result["backbones"]
    assert not result["torch_after_import"] and not result["torch"] and not result["modAL"], result


def test_torch_free_registries_match_the_real_ones():
    from worker.ml import backbone_specs, backbones
    from worker.ml.strategies import STRATEGIES
    from worker.ml.strategy_names import STRATEGY_NAMES

    assert list(STRATEGY_NAMES) == list(STRATEGIES)
    assert backbones.available_backbones() == backbone_specs.available_backbones()
    assert backbones.get_spec("resnet18") is backbone_specs.get_spec("resnet18")


def test_weights_lookup_without_torch_matches_torch_hub(monkeypatch, tmp_path):
    """The torch-free lookup finds the torch cache where torch.hub would."""
    import torch

    from worker.ml import backbone_specs

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    expected = torch.hub.get_dir()
    saved = sys.modules.pop("torch")
    try:
        assert str(backbone_specs._torch_hub_dir()) == expected
    finally:
        sys.modules["torch"] = saved


@pytest.fixture
def lead_client(client, make_user, project_factory):
    project = project_factory("Settings", classes=["dress", "hat", "shoe"])
    lead = make_user("lead")
    set_member(project, lead, Role.LEAD)
    client.force_login(lead)
    return client, project


def _post(client, project, **data) -> list[str]:
    """The messages after a POST: a refusal is the page again with a 400 (or, before the
    bad-input work, a redirect back), a success a redirect back to the page."""
    response = client.post(reverse("projects:settings", args=[project.pk]), data, follow=True)
    assert response.status_code in (200, 400)
    return [str(m) for m in response.context["messages"]]


def test_class_table_headers_name_every_column(lead_client):
    client, project = lead_client
    html = client.get(reverse("projects:settings", args=[project.pk])).content.decode()
    table = html[html.index('id="classes"'):html.index("</table>", html.index('id="classes"'))]
    headers = re.findall(r"<th>(.*?)</th>", table)
    assert headers == ["Order", "Name", "Hotkey", "Save"]
    first_row = table[table.index("<tr data-label"):table.index("</tr>", table.index("<tr data-label"))]
    assert first_row.count("<td") == len(headers)
    assert 'name="hotkey"' in first_row.split("<td")[3]  # the hotkey sits under "Hotkey"


def test_lead_pages_share_a_tab_bar(lead_client):
    client, project = lead_client
    pages = {
        "settings": reverse("projects:settings", args=[project.pk]),
        "dashboard": reverse("insights:dashboard", args=[project.pk]),
        "errors": reverse("insights:label_errors", args=[project.pk]),
        "map": reverse("insights:map", args=[project.pk]),
    }
    for tab, url in pages.items():
        html = client.get(url).content.decode()
        nav = html[html.index('class="insights-tabs"'):html.index("</nav>")]
        for other in pages.values():
            assert f'href="{other}"' in nav, (tab, other)
        assert re.search(rf'href="{re.escape(url)}" class="active"', nav), tab


def test_merge_defaults_to_another_class_and_refuses_a_class_into_itself(lead_client):
    client, project = lead_client
    html = client.get(reverse("projects:settings", args=[project.pk])).content.decode()
    source = re.search(r'id="merge-source">.*?<option value="(\d+)" selected', html, re.S)
    target = re.search(r'id="merge-target">.*?<option value="(\d+)" selected', html, re.S)
    assert source and target and source.group(1) != target.group(1)
    dress = project.classes.get(name="dress")
    messages = _post(client, project, action="merge", source=dress.pk, target=dress.pk)
    assert messages == ["Pick two different classes: dress cannot be merged into itself. "
                        "Nothing was changed."]
    assert project.classes.count() == 3


def test_reorder_by_buttons_and_by_a_validated_order(lead_client):
    client, project = lead_client
    dress, hat, shoe = project.classes.all()
    assert _post(client, project, action="move_class", label=shoe.pk, direction="up") == [
        "Moved shoe up."]
    assert [c.name for c in project.classes.all()] == ["dress", "shoe", "hat"]
    assert "already first" in _post(client, project, action="move_class", label=dress.pk,
                                    direction="up")[0]
    assert "up or down" in _post(client, project, action="move_class", label=dress.pk,
                                 direction="sideways")[0]
    _post(client, project, action="reorder", order=f"{hat.pk},{dress.pk},{shoe.pk}")
    assert [c.name for c in project.classes.all()] == ["hat", "dress", "shoe"]
    for bad in (f"{hat.pk},{hat.pk},{shoe.pk}", f"{hat.pk},{dress.pk}"):
        assert _post(client, project, action="reorder", order=bad)[0].startswith("The new order")
    assert _post(client, project, action="reorder", order="1,x,3")  # refused, with a message
    assert [c.name for c in project.classes.all()] == ["hat", "dress", "shoe"]


def test_favicon(client, lead_client):
    lead, project = lead_client
    html = lead.get(reverse("projects:settings", args=[project.pk])).content.decode()
    assert re.search(r'<link rel="icon" href="/static/labeler/favicon.ico"', html)
    client.logout()
    response = client.get("/favicon.ico")  # no login needed, as browsers ask before any
    assert response.status_code == 301 and response["Location"] == "/static/labeler/favicon.ico"
    icon = client.get(response["Location"])
    assert icon.status_code == 200
    body = b"".join(icon.streaming_content) if icon.streaming else icon.content
    assert body[:4] == b"\x00\x00\x01\x00"  # an ICO file
