"""Plan documents as they arrive: YAML or JSON text, validated against schemas/plan.json.

Structural errors name the JSON path of the bad field; the core's parse_plan
then checks the semantics (rates, tiers, shares) and names its path too.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import yaml

from trailpay.core.plans import PlanError

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "plan.json"


@cache
def _validator() -> Any:
    return jsonschema_rs.validator_for(orjson.loads(SCHEMA.read_bytes()))


def _path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(document)"


def read_plan_document(body: bytes, content_type: str) -> dict[str, Any]:
    """Parse and schema-check a plan; raises PlanError(path, why)."""
    try:
        if "yaml" in content_type or "yml" in content_type:
            # Dates stay strings, as in JSON: the schema and parse_plan read them.
            doc = yaml.load(body, Loader=_StringDatesLoader)  # noqa: S506 - safe loader subclass
        else:
            doc = orjson.loads(body)
    except (yaml.YAMLError, orjson.JSONDecodeError) as exc:
        raise PlanError("(document)", f"not valid YAML/JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PlanError("(document)", "a plan document must be an object")
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(map(str, e.instance_path)))
    if errors:
        raise PlanError(*_explain(errors[0]))
    return doc


def _explain(e: Any) -> tuple[str, str]:
    """(path, why) in words partner ops can act on; a missing field is named itself."""
    kind = e.kind
    parts = list(e.instance_path)
    name = type(kind).__name__
    if name == "Required":
        return _path([*parts, kind.property]), "is required"
    if name == "AdditionalProperties":
        return _path([*parts, kind.unexpected[0]]), "is not a field of this rule kind or section"
    if name == "Pattern" and "rate" in e.schema_path:
        return _path(parts), f"must be a decimal string between 0 and 1, got {e.instance!r}"
    if name == "Pattern" and "decimal" in e.schema_path:
        return _path(parts), f"must be a non-negative decimal string, got {e.instance!r}"
    return _path(parts), e.message


class _StringDatesLoader(yaml.SafeLoader):
    pass


# YAML would turn 2026-01-01 into a date object; plans keep ISO strings like JSON does.
_StringDatesLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
