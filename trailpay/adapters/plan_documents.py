"""Plan documents as they arrive: YAML or JSON text, validated against schemas/plan.json.

Structural errors name the JSON path of the bad field; the core's parse_plan
then checks the semantics (rates, tiers, shares) and names its path too.

A document is bounded before anything walks it: at most PLAN_MAX_BYTES, nested at
most MAX_DEPTH deep, and YAML aliases expanding to at most MAX_NODES nodes (a
"billion laughs" document is a few hundred bytes of aliases that expand to 10^9
strings; the schema check then walked all of them). A YAML document nested 10,000
deep overflowed the composer's recursion; it now stops at MAX_DEPTH.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import yaml
from yaml.nodes import CollectionNode, MappingNode, Node, SequenceNode

from trailpay.adapters import json_values
from trailpay.adapters.cloudevents import YEARS
from trailpay.core.plans import PlanError

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "plan.json"
PLAN_MAX_BYTES = 256 * 1024
MAX_DEPTH = 32
MAX_NODES = 100_000
MAX_ALIASES = 1_000


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
    if len(body) > PLAN_MAX_BYTES:
        raise PlanError("(document)", f"is {len(body)} bytes; a plan document holds at most "
                                      f"{PLAN_MAX_BYTES}")
    try:
        if "yaml" in content_type or "yml" in content_type:
            doc = _load_yaml(body)
        else:
            doc = orjson.loads(body)
    except (yaml.YAMLError, orjson.JSONDecodeError) as exc:
        raise PlanError("(document)", f"not valid YAML/JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PlanError("(document)", "a plan document must be an object")
    try:
        json_values.check(doc, "(document)", MAX_DEPTH)
    except json_values.ValueRefused as exc:
        raise PlanError(exc.field.removeprefix("(document)."), exc.message) from None
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
    if name == "Pattern" and kind.pattern == YEARS:
        return _path(parts), f"must be a date in the years 1900 to 2200, got {e.instance!r}"
    if name == "Pattern" and "rate" in e.schema_path:
        return _path(parts), f"must be a decimal string between 0 and 1, got {e.instance!r}"
    if name == "Pattern" and "decimal" in e.schema_path:
        return _path(parts), f"must be a non-negative decimal string, got {e.instance!r}"
    return _path(parts), e.message


# --- YAML, bounded ----------------------------------------------------------------------------

class _TooBig(yaml.YAMLError):
    pass


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader (plain data only) that stops composing past MAX_DEPTH or MAX_ALIASES;
    `_load_yaml` bounds what the aliases expand to before anything is constructed."""

    def __init__(self, stream: bytes) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _TooBig(f"uses more than {MAX_ALIASES} aliases")
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _TooBig(f"is nested deeper than {MAX_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


# YAML would turn 2026-01-01 into a date object; plans keep ISO strings like JSON does.
_BoundedLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _expanded(root: Node) -> None:
    """Refuse a node graph that, aliases expanded, holds more than MAX_NODES nodes, is
    nested deeper than MAX_DEPTH or refers to itself. Each distinct node is walked once
    (an alias to it reuses its count and height), and the recursion is never deeper than
    MAX_DEPTH."""
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, height), aliases expanded
    open_: set[int] = set()

    def walk(node: Node, level: int) -> tuple[int, int]:
        key = id(node)
        if key in open_:
            raise _TooBig("refers to itself through an alias")
        if key not in done:
            if level > MAX_DEPTH:
                raise _TooBig(f"is nested deeper than {MAX_DEPTH} levels")
            nodes, height = 1, 1
            if isinstance(node, CollectionNode):
                open_.add(key)
                children = ([c for pair in node.value for c in pair]
                            if isinstance(node, MappingNode) else
                            list(node.value) if isinstance(node, SequenceNode) else [])
                for child in children:
                    n, h = walk(child, level + 1)
                    nodes, height = nodes + n, max(height, h + 1)
                    if nodes > MAX_NODES:
                        raise _TooBig(f"expands to more than {MAX_NODES} values through "
                                      "its aliases")
                open_.discard(key)
            done[key] = (nodes, height)
        nodes, height = done[key]
        if level + height - 1 > MAX_DEPTH:
            raise _TooBig(f"is nested deeper than {MAX_DEPTH} levels through its aliases")
        return nodes, height

    walk(root, 1)


def _load_yaml(body: bytes) -> Any:
    loader = _BoundedLoader(body)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded(node)
        return loader.construct_document(node)
    except _TooBig as exc:
        raise PlanError("(document)", f"the YAML document {exc}") from None
    except RecursionError:  # not expected past the bounds above; never a 500
        raise PlanError("(document)", "the YAML document is nested too deeply") from None
    finally:
        loader.dispose()
