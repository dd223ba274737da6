"""The published OpenAPI says what the gateway answers: every error as problem JSON.

FastAPI documents a 422 as `application/json` with its own validation schema and no
other error at all. After FastAPI builds the document, every operation gets the
errors it can answer, each as `application/problem+json` with the `Problem` schema
(RFC 9457 plus trailpay's `field` and `errors`): 401 and 403 where a key is needed,
404 and 422 on the API, 413 with the route's body limit where it takes a body, the
statuses a route declares itself (409, 400, 415), and a `default` for the rest (405,
500, 503).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from services.gateway.limits import DEFAULT, EXTENSION, words
from services.gateway.problems import MEDIA_TYPE

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "a URI naming the kind of problem"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "for humans"},
        "instance": {"type": "string", "description": "the request path"},
        "field": {"type": "string", "description": "the culprit as a dotted path, e.g. "
                                                   "data.acv or [2].data.partners[0].share"},
        "errors": {"type": "array", "items": {
            "type": "object", "properties": {"field": {"type": ["string", "null"]},
                                             "message": {"type": "string"}}}},
    },
}
_REF = {"$ref": "#/components/schemas/Problem"}
_SAYS = {
    400: "The request is malformed (an event that fails its schema, named by `field`)",
    401: "No bearer token, or an unknown or revoked one",
    403: "The key lacks the scope, or is bound to a partner and may not do this",
    404: "Not found; for a partner-bound key, also anything of another partner",
    409: "Conflicts with what was done before",
    413: "The request body is over this route's limit",
    415: "Unsupported media type",
    422: "Invalid request, named by `field`",
}
_METHODS = ("get", "put", "post", "delete", "patch")


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {MEDIA_TYPE: {"schema": _REF}}}


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite an OpenAPI document in place (and return it) so that errors are problems."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    for path, item in schema.get("paths", {}).items():
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            responses = op.setdefault("responses", {})
            success = next((r["content"] for s, r in sorted(responses.items())
                            if s.startswith("2") and r.get("content")), None)
            for s, r in responses.items():  # 201 beside a 200, 200 beside a 202: same body
                if s.startswith("2") and not r.get("content") and success is not None:
                    r["content"] = success
            statuses = {int(s) for s in responses if s.isdigit() and int(s) >= 400}
            if op.get("security"):
                statuses |= {401, 403}
            if path.startswith("/v1/"):
                statuses |= {404, 422}
            if EXTENSION in op or "requestBody" in op:
                statuses.add(413)
            for status in sorted(statuses):
                said = responses.get(str(status), {}).get("description")
                if said in (None, "", "Validation Error", "Successful Response"):
                    said = _SAYS.get(status, "Error")
                if status == 413:
                    said = (f"The request body is over this route's limit of "
                            f"{words(op.get(EXTENSION, DEFAULT))}")
                responses[str(status)] = _problem(said)
            responses["default"] = _problem("Any other error (405 with Allow, 500, 503), as "
                                            "problem JSON")
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return schema


def install(app: FastAPI) -> None:
    """app.openapi() returns FastAPI's document with its errors documented."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()  # FastAPI's, cached until the routes change
        if "Problem" not in schema.get("components", {}).get("schemas", {}):
            document_problems(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
