"""Templates and our scripts hold nothing the Content-Security-Policy would refuse.

A fast guard next to the browser test (test_csp_browser.py), which only sees the pages it
visits: any template or script added later with an inline <script>, an inline event handler, a
style="" attribute or a javascript: URL fails here, with its file and line.
"""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

REPO = Path(settings.BASE_DIR)
TEMPLATE_RULES = {
    # <script> without src (json_script islands are rendered by a filter, not written inline).
    "inline <script>": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),
    "style attribute": re.compile(r"\sstyle\s*=", re.I),
    "<style> element": re.compile(r"<style[\s>]", re.I),
    "inline event handler": re.compile(r"\son[a-z]+\s*=", re.I),
    "javascript: URL": re.compile(r"javascript:", re.I),
}
# HTML that our JavaScript builds as strings (innerHTML, chart tooltips) is parsed under the same
# policy; CSSOM (el.style.x = ..., setProperty) is allowed and not matched here.
SCRIPT_RULES = {
    "style attribute in built HTML": re.compile(r"""style\s*=\s*\\?["']"""),
    "setAttribute('style')": re.compile(r"""setAttribute\(\s*["']style["']"""),
    "eval-like": re.compile(r"\beval\(|new Function\(|set(?:Timeout|Interval)\(\s*[\"'`]"),
}


def _matches(text: str, rules) -> list[tuple[int, str]]:
    return [(number, what) for number, line in enumerate(text.splitlines(), 1)
            for what, rule in rules.items() if rule.search(line)]


def _violations(paths, rules) -> list[str]:
    found = []
    for path in paths:
        lines = path.read_text().splitlines()
        for number, what in _matches(path.read_text(), rules):
            found.append(f"{path.relative_to(REPO)}:{number}: {what}: {lines[number - 1].strip()[:120]}")
    return found


def test_templates_have_no_inline_script_or_style():
    templates = sorted((REPO / "templates").rglob("*.html"))
    templates += sorted((REPO / "labeler").rglob("templates/**/*.html"))
    assert len(templates) >= 10
    assert not _violations(templates, TEMPLATE_RULES)


def test_our_scripts_build_no_inline_styles_or_code():
    scripts = [p for p in sorted((REPO / "labeler" / "static").rglob("*.js")) if "vendor" not in p.parts]
    assert len(scripts) >= 5
    assert not _violations(scripts, SCRIPT_RULES)


def test_the_guard_catches_what_it_should():
    page = ('<script>alert(1)</script>\n<b style="color:red" onclick="x()">\n'
            '{{ data|json_script:"d" }}<script src="/static/ok.js"></script>\n')
    assert _matches(page, TEMPLATE_RULES) == [
        (1, "inline <script>"), (2, "style attribute"), (2, "inline event handler")]
    script = """el.innerHTML = '<span style="color:red">' + name;\nel.style.color = "red";\n"""
    assert _matches(script, SCRIPT_RULES) == [(1, "style attribute in built HTML")]
