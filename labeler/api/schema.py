"""The bearer scheme in the OpenAPI schema (drf-spectacular extension)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "labeler.api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http", "scheme": "bearer",
            "description": "A personal token from /account/tokens/ (shown once when created).",
        }


ERRORS = {
    "400": "Bad input (the message says what is wrong)",
    "401": "No token, or an invalid, expired or revoked one",
    "403": "Signed in, but the project's lead role (or staff) is needed",
    "404": "No such object, or one in a project the caller may not see",
    "405": "Method not allowed",
    "409": "Not possible now (e.g. no trained model yet)",
    "415": "Unsupported body type",
    "429": "Too many failed token attempts from this address",
}
ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "What went wrong, for a person."},
        "fields": {"type": "object", "additionalProperties": True,
                   "description": "Per-field messages for bad input."},
    },
    "required": ["error"],
}


def add_error_responses(result: dict, generator, request, public) -> dict:
    """Every operation documents the JSON errors every view can answer (a postprocessing
    hook: listing them on each view by hand would be repeated 40 times), and is tagged with
    the resource it acts on."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        # Grouped in the docs by what they act on: /projects/{project_id}/<this>/...
        parts = path.strip("/").split("/")
        tag = parts[4] if len(parts) > 4 else "projects"
        for operation in operations.values():
            operation["tags"] = [tag]
            responses = operation.setdefault("responses", {})
            for code, text in ERRORS.items():
                responses.setdefault(code, {"description": text, "content": ref})
    return result
