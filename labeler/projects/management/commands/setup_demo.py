"""Create the demo project, and the demo admin when run as the demo (idempotent).

The demo admin has a public password (README), so it is only created when `make run` says this is
the demo (LABELER_DEMO=1) or with --create-admin, and never in production mode: there the lead
must be an existing account (`manage.py createsuperuser`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from labeler.items.importing import import_folder
from labeler.projects.demo_multitask import create_multitask_demo
from labeler.projects.models import Project, Role
from labeler.projects.services import create_project, set_member

DEMO_PROJECT = "Clothing demo"
FALLBACK_PROJECT = "Sample photos demo"


def shared_dataset() -> Path:
    default = settings.BASE_DIR.parent / "shared" / "datasets" / "clothing-small"
    return Path(os.environ.get("LABELER_DEMO_DATA", default))


def fallback_photos(target: Path) -> list[str]:
    """Crops of the two photos scikit-learn ships, as a tiny two-class set (no network needed)."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    data = load_sample_images()
    classes = ["building", "flower"]
    for name, array in zip(classes, data.images, strict=True):
        folder = target / name
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(array)
        w, h = image.size
        for i in range(24):
            x = (i * 37) % (w - 200)
            y = (i * 53) % (h - 200)
            size = 160 + (i * 7) % 80
            crop = image.crop((x, y, x + size, y + size)).resize((224, 224))
            crop.save(folder / f"{name}-{i:02d}.jpg", quality=90)
    return classes


class Command(BaseCommand):
    help = "Create a demo admin user and a demo project with real photos."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default=os.environ.get("LABELER_DEMO_USER", "admin"))
        parser.add_argument(
            "--password", default=os.environ.get("LABELER_DEMO_PASSWORD", "labeler-demo")
        )
        parser.add_argument("--limit", type=int, default=None, help="import at most N photos")
        parser.add_argument(
            "--create-admin", action="store_true",
            default=os.environ.get("LABELER_DEMO", "") == "1",
            help="create the demo admin with the demo password if missing (default: LABELER_DEMO=1)",
        )

    def demo_user(self, opts):
        """The project lead: the demo admin (created in the demo only) or an existing account."""
        User = get_user_model()
        user = User.objects.filter(username=opts["username"]).first()
        if user is not None:
            return user
        if settings.PRODUCTION:
            raise CommandError(
                f"No user {opts['username']!r}: production mode never creates the demo admin. "
                "Create an account with `manage.py createsuperuser` and pass --username."
            )
        if not opts["create_admin"]:
            raise CommandError(
                f"No user {opts['username']!r}. Pass --create-admin (or LABELER_DEMO=1) to create "
                "the demo admin, or create an account with `manage.py createsuperuser`."
            )
        user = User.objects.create_user(
            opts["username"], password=opts["password"], is_staff=True, is_superuser=True
        )
        self.stdout.write(f"Created admin user {user.username}.")
        return user

    def handle(self, *args, **opts) -> None:
        user = self.demo_user(opts)
        self.single_set_demo(user, opts)
        # The second demo: several label sets per image (when the shared data is present).
        self.stdout.write(create_multitask_demo(user, opts["limit"]))

    def single_set_demo(self, user, opts) -> None:
        data = shared_dataset() / "train"
        if data.is_dir():
            name, classes, folder = DEMO_PROJECT, sorted(p.name for p in data.iterdir() if p.is_dir()), data
        else:
            name = FALLBACK_PROJECT
            folder = Path(tempfile.mkdtemp(prefix="labeler-demo-"))
            classes = fallback_photos(folder)
            self.stdout.write(f"{shared_dataset()} not found: using scikit-learn's sample photos.")
        project = Project.objects.filter(name=name).first()
        if project is None:
            project = create_project(
                name, classes, lead=user,
                description="Real photos; label them and watch the model learn.",
            )
        set_member(project, user, Role.LEAD)
        if project.items.exists():
            self.stdout.write(f"Demo project {project.name!r} already has {project.items.count()} images.")
            return
        report = import_folder(project, folder, labels_from_folders=False, user=user, limit=opts["limit"])
        self.stdout.write(f"Demo project {project.name!r}: {report.summary()}.")
