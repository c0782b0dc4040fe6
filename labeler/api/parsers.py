"""JSON bodies bounded as the pages' are (labeler.request_input): size and nesting checked
before parsing, and no text the database could not store (lone surrogates)."""

from __future__ import annotations

import io

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from labeler.request_input import MAX_JSON_DEPTH, nesting_depth

MAX_API_JSON_BYTES = 8 * 1024 * 1024  # bulk imports: thousands of labels or predictions


def _check_text(value) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ParseError("Text must be valid Unicode (no lone surrogates).") from exc
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_text(item)
    elif isinstance(value, list):
        for item in value:
            _check_text(item)


class SafeJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read(MAX_API_JSON_BYTES + 1) if stream is not None else b""
        if len(raw) > MAX_API_JSON_BYTES:
            raise ParseError(f"The body is larger than {MAX_API_JSON_BYTES // 2**20} MiB.")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError("The body must be UTF-8 JSON.") from exc
        if nesting_depth(text) > MAX_JSON_DEPTH:
            raise ParseError(f"The JSON nests deeper than {MAX_JSON_DEPTH} levels.")
        data = super().parse(io.BytesIO(raw), media_type, parser_context)
        _check_text(data)
        return data
