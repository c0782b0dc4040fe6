"""Spreadsheet formula injection: every CSV the product writes (web downloads, the
export_labels command, the zips that hold a labels.csv, the admin's export action) with class
and file names that are formulas. No cell may start with a formula character, except plain
numbers; the hostile names must still be there, neutralised with a leading quote."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from django.core.management import call_command
from django.urls import reverse

from labeler.csv_safety import csv_line, neutralise, neutralise_row

from .hostile import FORMULA_CLASSES, hostile  # noqa: F401 - the shared fixture

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@pytest.mark.parametrize("cell", [
    "=1+1", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "=HYPERLINK(\"x\")", "-",
    "-1-1", "+", "=",
])
def test_formula_cells_get_a_leading_quote(cell):
    assert neutralise(cell) == "'" + cell


@pytest.mark.parametrize("cell", [
    "-0.25", "+3", "-1e-5", "0.9312", "-7", ".5", "cat", "", "a=b", " =1", "'=1", "x-1",
])
def test_numbers_and_plain_text_are_unchanged(cell):
    assert neutralise(cell) == cell


def test_real_numbers_stay_numbers():
    row = neutralise_row([-3, -0.5, 7, None, "=1"])
    assert row[:4] == [-3, -0.5, 7, None] and row[4] == "'=1"
    assert csv_line(row) == "-3,-0.5,7,,'=1\r\n"


def test_a_carriage_return_cannot_split_a_row():
    line = csv_line(["a\r=1+1", "b\n@x", "\r=2"])
    assert list(csv.reader(io.StringIO(line, newline=""))) == [["a\r=1+1", "b\n@x", "'\r=2"]]


def _content(response) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


def _check(text: str, where: str) -> tuple[list[list[str]], set[str]]:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) > 1, where
    for row in rows:
        assert len(row) == len(rows[0]), f"{where}: a row was split: {row!r}"
        for cell in row:
            if cell.startswith(FORMULA_START):
                assert neutralise(cell) == cell, f"{where}: formula cell {cell!r}"
    cells = {cell for row in rows for cell in row}
    return rows, cells


@pytest.mark.django_db
def test_every_csv_export_is_neutralised(hostile, client, tmp_path):  # noqa: F811
    project = hostile["project"]
    client.force_login(hostile["lead"])
    texts: dict[str, str] = {}
    for fmt in ("csv", "predictions"):
        r = client.get(reverse("insights:export", args=[project.pk, fmt]))
        assert r.status_code == 200 and r["Content-Type"].startswith("text/csv"), fmt
        texts[f"web {fmt}"] = _content(r).decode()
        out = tmp_path / f"cmd.{fmt}"
        call_command("export_labels", str(project.pk), "--format", fmt, "--out", str(out))
        texts[f"command {fmt}"] = out.read_bytes().decode()  # no newline translation
    r = client.get(reverse("insights:export", args=[project.pk, "folders"]))
    with zipfile.ZipFile(io.BytesIO(_content(r))) as zf:
        texts["folders zip"] = zf.read("labels.csv").decode()
    client.force_login(hostile["admin"])
    r = client.post(reverse("admin:projects_project_changelist"), {
        "action": "export_labels", "_selected_action": [project.pk],
    })
    assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(_content(r))) as zf:
        name = next(n for n in zf.namelist() if n.endswith("labels.csv"))
        texts["admin action"] = zf.read(name).decode()

    for where, text in texts.items():
        rows, cells = _check(text, where)
        # The hostile names are kept, as text: label / prediction cells and p_<class> headers.
        for name in FORMULA_CLASSES:
            assert "'" + name in cells, (where, name)
            assert name not in cells, (where, name)
        if "predictions" in where:
            header = rows[0]
            assert [h for h in header if h.startswith("p_")] == [
                f"p_{n}" for n in [c.name for c in hostile["classes"]]
            ]
            # Probabilities are plain numbers, untouched.
            assert all(float(v) >= 0 for row in rows[1:] for v in row[-len(hostile["classes"]):]
                       if v)
        else:
            # File names that were formulas (original_name column) are neutralised too.
            assert {"'\t=1+1.jpg", "'\r=1+1.jpg", "'-2+3+cmd.jpg"} <= cells, where

