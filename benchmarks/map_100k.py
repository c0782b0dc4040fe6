"""Benchmark: the embedding map with 100,000 items, server and browser.

    .venv/bin/python benchmarks/map_100k.py [--items 100000] [--keep DIR]

Builds a throw-away database with one project of N items (synthetic, clustered 1280-d float16
embeddings, predictions for all, labels for 2 %), then measures:
  * the projection (worker.ml.projection, landmark t-SNE) as the Celery task computes it;
  * the map API (labeler.insights.maps.map_payload): time and response size;
  * Debian's Chromium (Playwright): time from navigation to the points drawn, and a hover.
Everything runs on this machine (loopback only) and stops by itself.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TWO_FRAMES = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--keep", help="data folder to use and keep (default: a temp dir)")
    args = parser.parse_args()
    data_dir = Path(args.keep or tempfile.mkdtemp(prefix="labeler-map-bench-"))
    os.environ["LABELER_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeler.settings")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from labeler.annotations.models import Annotation
    from labeler.insights import maps
    from labeler.items.models import Item
    from labeler.projects.services import create_project
    from labeler.training.stores import store_for

    results: dict = {"items": args.items}
    call_command("migrate", verbosity=0)
    User = get_user_model()
    lead = User.objects.filter(username="bench").first() or User.objects.create_user(
        "bench", password="bench-pass-1")
    names = [f"class {i}" for i in range(args.classes)]
    project = create_project(f"Map bench {time.time_ns()}", names, lead=lead)
    classes = list(project.classes.all())
    n, d = args.items, 1280
    rng = np.random.default_rng(0)
    t = time.monotonic()
    y = rng.integers(args.classes, size=n)
    items = [
        Item(project=project, image=f"items/{project.pk}/none/{i}.jpg", original_name=f"img{i}.jpg",
             sha256=hashlib.sha256(f"{project.pk}-{i}".encode()).hexdigest(), width=64, height=64,
             predicted_class=classes[y[i] if rng.random() > 0.1 else rng.integers(args.classes)],
             predicted_confidence=float(rng.uniform(0.3, 1.0)))
        for i in range(n)
    ]
    Item.objects.bulk_create(items, batch_size=5000)
    ids = np.array(Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
    labeled = rng.choice(n, n // 50, replace=False)
    Annotation.objects.bulk_create(
        [Annotation(item_id=int(ids[i]), label=classes[y[i]], annotator=lead) for i in labeled],
        batch_size=5000,
    )
    Item.objects.filter(pk__in=ids[labeled].tolist()).update(annotation_count=1)
    store = store_for(project.pk, project.backbone)
    centers = rng.normal(size=(args.classes, d)).astype(np.float32)
    for s in range(0, n, 20_000):
        block = centers[y[s : s + 20_000]] + 1.5 * rng.normal(size=(len(y[s : s + 20_000]), d))
        store.append(ids[s : s + 20_000], block.astype(np.float16))
    store.compact()
    results["setup_s"] = round(time.monotonic() - t, 1)

    t = time.monotonic()
    data = maps.compute_map(project)  # what the Celery task runs
    results["projection_s"] = round(time.monotonic() - t, 1)
    results["projection_method"] = data["method"]
    t = time.monotonic()
    payload = maps.map_payload(project)
    results["api_s"] = round(time.monotonic() - t, 2)
    results["api_bytes"] = len(json.dumps(payload))
    print(json.dumps(results), flush=True)

    # The page in Chromium, served by the app itself on a loopback port.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=REPO, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.2)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=os.environ.get("LABELER_CHROMIUM", "/usr/bin/chromium"),
                args=["--headless", "--no-sandbox", "--disable-gpu"],
            )
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            base = f"http://127.0.0.1:{port}"
            page.goto(f"{base}/accounts/login/")
            page.fill("#id_username", "bench")
            page.fill("#id_password", "bench-pass-1")
            page.click("button[type=submit]")
            page.wait_for_load_state("networkidle")
            t = time.monotonic()
            page.goto(f"{base}/projects/{project.pk}/map/")
            page.wait_for_function("window.labelerMap && window.labelerMap.n > 0", timeout=120_000)
            page.evaluate(TWO_FRAMES)
            results["browser_first_draw_s"] = round(time.monotonic() - t, 2)
            results["browser_build_ms"] = round(page.evaluate("window.labelerMap.drawMs"), 1)
            target = int(ids[12345 % n])
            px = page.evaluate("(id) => window.labelerMap.pixelOf(id)", target)
            box = page.locator("#map").bounding_box()
            t = time.monotonic()
            page.mouse.move(box["x"] + px[0], box["y"] + px[1])
            page.wait_for_selector(".map-tip", timeout=10_000)
            results["hover_tooltip_s"] = round(time.monotonic() - t, 2)
            t = time.monotonic()
            page.click("input[name=color][value=pred]")
            page.evaluate(TWO_FRAMES)
            results["recolour_s"] = round(time.monotonic() - t, 2)
            shot = data_dir / "map-100k.png"
            page.screenshot(path=str(shot))
            results["screenshot"] = str(shot)
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
