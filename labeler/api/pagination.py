"""Keyset ("cursor") pages: each page is an index range scan from the last id seen, so page
10,000 of a million items costs what page 1 does (no OFFSET). DRF's CursorPagination does this;
here a forged cursor is a 400, not a database error."""

from __future__ import annotations

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination


class IdCursorPagination(CursorPagination):
    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except NotFound as exc:
            raise ValidationError({"cursor": ["Invalid cursor."]}) from exc
        if cursor is not None and cursor.position is not None and not (
            cursor.position.isdigit() and len(cursor.position) <= 19
        ):
            raise ValidationError({"cursor": ["Invalid cursor."]})
        if cursor is not None and cursor.offset > 10_000:
            raise ValidationError({"cursor": ["Invalid cursor."]})
        return cursor

    def get_page_size(self, request):
        try:
            return super().get_page_size(request)
        except (OverflowError, ValueError):
            return self.page_size
