"""Plan explainers and change logs as JSON, HTML and Markdown, from the core's models.

The core decides what is said and computes every figure (core.explainer,
core.plan_changes); this module only lays it out. The HTML and Markdown are built
from the same JSON document the API answers, so a page can never show a figure
the JSON does not have. Plan text reaches the HTML only through jinja2's autoescaping.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from trailpay.core.explainer import Explainer
from trailpay.core.plan_changes import Change


def explainer_json(ex: Explainer) -> dict[str, Any]:
    doc = asdict(ex)
    doc["effective_from"] = ex.effective_from.isoformat()
    for term in doc["terms"]:
        for example in term["examples"]:
            example["figures"] = dict(example["figures"])
    return doc


def change_json(c: Change) -> dict[str, Any]:
    return asdict(c)


def step_json(frm: int, to: int, effective_from: str, retroactive: bool, rerated_facts: int,
              published_at: datetime | None, changes: list[Change]) -> dict[str, Any]:
    """One version's changes from the version before it."""
    return {"from": frm, "to": to, "effective_from": effective_from, "retroactive": retroactive,
            "rerated_facts": rerated_facts,
            "published_at": published_at.isoformat() if published_at else None,
            "changes": [change_json(c) for c in changes]}


@cache
def _env(markdown: bool) -> Environment:
    return Environment(loader=PackageLoader("services.gateway", "templates"),
                       autoescape=not markdown, undefined=StrictUndefined, trim_blocks=True,
                       lstrip_blocks=True, keep_trailing_newline=True)


def explainer_html(doc: dict[str, Any]) -> str:
    return _env(False).get_template("explainer.html").render(doc=doc)


def explainer_markdown(doc: dict[str, Any]) -> str:
    return _env(True).get_template("explainer.md").render(doc=doc)


def changes_html(doc: dict[str, Any]) -> str:
    return _env(False).get_template("changes.html").render(doc=doc)
