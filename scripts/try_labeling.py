#!/usr/bin/env python
"""Act as a new user against a running workbench (`make run`): log in, label N images of the
demo project with the keyboard, wait for a model version, check that suggestions appear, and
save a screenshot. Used for the README's screenshot and for the newcomer check.

    .venv/bin/python scripts/try_labeling.py [--url http://127.0.0.1:8000] [--labels 20]
"""

from __future__ import annotations

import argparse
import re
import sys
import time

from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="labeler-demo")
    parser.add_argument("--labels", type=int, default=20)
    parser.add_argument("--screenshot", default="docs/screenshot.png")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for a model")
    args = parser.parse_args()
    names: dict[int, str] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})

        def remember(response):
            if "/next/" in response.url and response.ok:
                for item in response.json().get("items", []):
                    names[item["id"]] = item["name"]

        page.on("response", remember)
        page.goto(args.url + "/")
        page.fill("#id_username", args.user)
        page.fill("#id_password", args.password)
        page.click("button[type=submit]")
        page.get_by_role("link", name="Label", exact=True).first.click()
        page.locator("#current-image").wait_for(state="visible", timeout=30000)
        keys = {
            b.locator("span").inner_text(): b.locator("kbd").inner_text()
            for b in page.locator(".class-button").all()
        }
        print(f"classes and keys: {keys}")

        def label_current() -> str:
            shown = int(page.locator("#current-image").get_attribute("data-item-id"))
            folder = names.get(shown, "").split("/")[0]
            key = keys.get(folder, "1")
            page.keyboard.press(key)
            page.wait_for_function(
                "id => document.querySelector('#current-image').dataset.itemId !== id",
                arg=str(shown),
            )
            return folder

        for _ in range(args.labels):
            label_current()
        print(f"labeled {args.labels} images with the keyboard")
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            status = page.locator("#model-status").inner_text()
            if re.match(r"v\d+", status):
                break
            page.wait_for_timeout(1000)
        else:
            print("no model version appeared", file=sys.stderr)
            return 1
        print(f"model: {status}")
        page.wait_for_timeout(3500)  # the page refreshes suggestions on the next status poll
        hits = 0
        for _ in range(5):
            suggestion = page.locator("#suggestion").inner_text()
            print(f"  suggestion: {suggestion}")
            hits += suggestion.startswith("Model suggests")
            label_current()
        page.screenshot(path=args.screenshot)
        print(f"screenshot: {args.screenshot}")
        browser.close()
        return 0 if hits >= 4 else 1


if __name__ == "__main__":
    sys.exit(main())
