"""The documented example (docs/api.md, "A complete example"; also the README's) runs as it is,
in its own process with plain `requests`, against a live server with a real Celery worker,
the pretrained backbone and real photos."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from labeler.api.tokens import create_token
from labeler.projects.models import Project
from labeler.training.models import ModelVersion

from ..conftest import real_subset

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "api.md"


def example_code(path: Path = DOC, heading: str = "## A complete example") -> str | None:
    text = path.read_text()
    if heading not in text:
        return None
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_shows_the_tested_example():
    """The README's "REST API" section carries the same code as docs/api.md (tested below)."""
    readme = example_code(REPO / "README.md", "## REST API")
    if readme is None:
        pytest.skip("the README has no REST API section yet")
    assert readme == example_code()


@pytest.mark.django_db(transaction=True)
def test_the_documented_example_runs(live_server, celery_worker, make_user, tmp_path):
    photos = real_subset(tmp_path / "photos", classes=4, per_class=10)
    staff = make_user("pipeline", staff=True)
    _, token = create_token(staff, "example")
    script = tmp_path / "example.py"
    script.write_text(example_code())
    env = {**os.environ, "LABELER_URL": live_server.url, "LABELER_TOKEN": token,
           "PHOTOS": str(photos)}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    project = Project.objects.get()
    assert project.items.count() == 40
    assert project.items.filter(annotation_count__gt=0).count() == 20
    assert ModelVersion.objects.filter(project=project, status="ready").exists()
    agree = re.search(r"40 predictions; (\d+) agree with the folders", done.stdout)
    assert agree, done.stdout
    assert int(agree.group(1)) > 10, done.stdout  # chance is 10 of 40 with four classes
