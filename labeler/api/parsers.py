"""JSON bodies bounded as the pages' are (labeler.request_input): size and nesting checked
before parsing, and no text the database could not store (lone surrogates)."""

from __future__ import annotations

import io

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from labeler.request_input import MAX_JSON_DEPTH, InvalidInput, check_strings, nesting_depth

MAX_API_JSON_BYTES = 8 * 1024 * 1024  # bulk imports: thousands of labels or predictions


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
        try:
            check_strings(data)
        except InvalidInput as exc:
            raise ParseError(str(exc)) from exc
        return data
