"""Request input checked by Django forms: JSON bodies, query strings and posted forms alike.

One mechanism for every view, so that bad input is a 400 with a message and never reaches the
database or the ORM as something it cannot store (10**30 as an id, a list as a number) - which
used to be a 500. JSON bodies are bounded in size and nesting *before* they are parsed, so a body
nested 100,000 deep is refused without recursing.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from itertools import accumulate
from typing import Any

from django import forms
from django.http import HttpRequest, JsonResponse

MAX_JSON_BYTES = 256 * 1024  # the largest body a page sends is a grid confirm (~48 ids)
MAX_JSON_DEPTH = 32
ID_MAX = 2**63 - 1  # ids are 64-bit (BigAutoField) on every database

# A JSON string, up to its closing quote or the end of the text: every match that starts at a
# quote succeeds, and possessively (no backtracking), so skipping strings is linear whatever the
# input (an unterminated string must not make the scan restart at each later quote).
_STRING = re.compile(r'"(?:[^"\\]|\\.?)*+(?:"|\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class InvalidInput(ValueError):
    """Input a view cannot use; the message says what is wrong, for the user."""

    def __init__(self, message: str, fields: dict | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}

    def response(self) -> JsonResponse:
        return JsonResponse({"error": str(self), "fields": self.fields}, status=400)


def nesting_depth(text: str) -> int:
    """How deep arrays and objects nest in JSON `text` (brackets inside strings don't count)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _no_constants(name: str) -> float:
    raise InvalidInput(f"{name} is not JSON; send numbers as digits.")


def check_strings(value: Any) -> None:
    """Reject strings the database could not store (lone surrogates from \\ud800 escapes)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInput("Text must be valid Unicode (no lone surrogates).") from exc
    elif isinstance(value, dict):
        for key, item in value.items():
            check_strings(key)
            check_strings(item)
    elif isinstance(value, list):
        for item in value:
            check_strings(item)


def read_json(request: HttpRequest) -> dict:
    """The request's JSON object (an empty body is {}), bounded in size and depth."""
    raw = request.body  # Django refuses more than DATA_UPLOAD_MAX_MEMORY_SIZE (a 400)
    if len(raw) > MAX_JSON_BYTES:
        raise InvalidInput(f"The body is larger than {MAX_JSON_BYTES // 1024} KiB.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput("The body must be UTF-8 JSON.") from exc
    if nesting_depth(text) > MAX_JSON_DEPTH:
        raise InvalidInput(f"The JSON nests deeper than {MAX_JSON_DEPTH} levels.")
    try:
        body = json.loads(text or "{}", parse_constant=_no_constants)
    except ValueError as exc:  # JSONDecodeError, or an integer of more than 4,300 digits
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput("Send a JSON object.") from exc
    if not isinstance(body, dict):
        raise InvalidInput("Send a JSON object.")
    check_strings(body)
    return body


def clean(form_class: type[forms.Form], data: Mapping) -> dict:
    """Validate `data` (a JSON object, request.GET or request.POST) with `form_class`'s fields.

    The form classes serve as schemas: each declared field cleans its value. Cleaning with the
    fields directly skips the form's per-instance deep copy of its fields, a quarter of a
    millisecond on every label saved; so forms used here must not rely on clean() hooks.
    """
    if form_class.clean is not forms.Form.clean or any(
        hasattr(form_class, f"clean_{name}") for name in form_class.base_fields
    ):
        raise TypeError(f"{form_class.__name__} has clean() hooks; bind it as a form instead.")
    cleaned, errors = {}, {}
    for name, field in form_class.base_fields.items():
        try:
            cleaned[name] = field.clean(data.get(name))
        except forms.ValidationError as exc:
            errors[name] = exc.messages
    if not errors:
        return cleaned
    message = "; ".join(f"{name.replace('_', ' ')}: {' '.join(msgs)}" for name, msgs in errors.items())
    raise InvalidInput(message, errors)


def clean_json(request: HttpRequest, form_class: type[forms.Form]) -> dict:
    return clean(form_class, read_json(request))


def json_errors(view: Callable[..., Any]) -> Callable[..., Any]:
    """Answer InvalidInput raised by `view` with a JSON 400 carrying its message."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        try:
            return view(request, *args, **kwargs)
        except InvalidInput as exc:
            return exc.response()

    return wrapper


class ScalarMixin:
    """JSON gives fields any type: a list or object where a scalar belongs is invalid (Django
    would take [] and {} as 'empty', and str() anything else), and so is a boolean."""

    def to_python(self, value: Any) -> Any:
        if isinstance(value, (list, dict, bool)):
            message = self.error_messages.get("invalid", "Give one value, not a list or object.")
            raise forms.ValidationError(message, code="invalid")
        return super().to_python(value)


class IdField(ScalarMixin, forms.IntegerField):
    """An object id: a positive 64-bit integer."""

    default_error_messages = {"invalid": "Give an id (a whole number)."}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", ID_MAX)
        super().__init__(**kwargs)
        self.error_messages["min_value"] = "No such id (ids are positive)."
        self.error_messages["max_value"] = "No such id (too large)."


class BoundedIntField(ScalarMixin, forms.IntegerField):
    """A whole number (a bare IntegerField would also take a list's str)."""


class NumberField(ScalarMixin, forms.FloatField):
    """A finite number; a huge integer is invalid, not an OverflowError."""

    def to_python(self, value: Any) -> float | None:
        try:
            return super().to_python(value)
        except OverflowError as exc:
            raise forms.ValidationError("The number is too large.", code="invalid") from exc


class TextField(ScalarMixin, forms.CharField):
    """Text (numbers are taken as their digits)."""


class UUIDInputField(ScalarMixin, forms.UUIDField):
    """A UUID (a client's idempotency key)."""


class IdListField(forms.Field):
    """A JSON list of ids (at most `max_items`)."""

    default_error_messages = {"invalid": "Give a list of ids (whole numbers)."}

    def __init__(self, *, max_items: int = 500, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)
        self.max_items = max_items

    def to_python(self, value: Any) -> list[int]:
        if value in (None, ""):
            return []
        if not isinstance(value, list):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        if len(value) > self.max_items:
            raise forms.ValidationError(f"At most {self.max_items} ids.", code="max_items")
        id_field = IdField()
        return [id_field.clean(x) for x in value]


class CommaIdsField(forms.CharField):
    """Ids in a query string or form field, comma-separated: "3,5,8"."""

    def __init__(self, *, max_items: int = 500, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)
        self.max_items = max_items

    def clean(self, value: Any) -> list[int]:
        text = super().clean(value) or ""
        parts = [p for p in text.split(",") if p.strip()]
        if len(parts) > self.max_items:
            raise forms.ValidationError(f"At most {self.max_items} ids.", code="max_items")
        id_field = IdField()
        return [id_field.clean(p.strip()) for p in parts]
