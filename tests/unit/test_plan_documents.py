"""Plan documents are parsed safely: bounded in size, depth and alias expansion, and only
plain JSON values get through (issue 14: a YAML plan nested 10,000 deep was a 500, a
billion-laughs plan cost 10 s of CPU, NaN and 64-bit overflows slipped through)."""

from __future__ import annotations

import time

import pytest

from tests.kit import billion_laughs
from trailpay.adapters.plan_documents import MAX_DEPTH, PLAN_MAX_BYTES, read_plan_document
from trailpay.core.plans import PlanError

YAML = "application/yaml"
PLAN = """plan_id: p1
version: 1
effective_from: "2025-01-01"
currency: USD
rules:
  - &upfront {id: anchor, kind: upfront, base: acv, rate: "0.10"}
payout: {minimum: "100.00", hold_days: 0}
"""


def refused(text: str | bytes, content_type: str = YAML, within: float = 1.0) -> PlanError:
    started = time.perf_counter()
    with pytest.raises(PlanError) as caught:
        read_plan_document(text.encode() if isinstance(text, str) else text, content_type)
    assert time.perf_counter() - started < within
    return caught.value


def test_a_plain_plan_with_aliases_and_merge_keys_reads_as_before():
    doc = read_plan_document(PLAN.replace(
        "payout:", "  - {<<: *upfront, id: second, base: tcv}\npayout:").encode(), YAML)
    assert [r["id"] for r in doc["rules"]] == ["anchor", "second"]
    assert doc["rules"][1]["rate"] == "0.10" and doc["effective_from"] == "2025-01-01"


def test_a_yaml_document_nested_ten_thousand_deep_is_refused_quickly():
    e = refused("a: " + "[" * 10_000 + "]" * 10_000)
    assert e.path == "(document)" and f"deeper than {MAX_DEPTH}" in e.why
    e = refused("".join("  " * i + "a:\n" for i in range(200)))  # block style
    assert f"deeper than {MAX_DEPTH}" in e.why


def test_a_billion_laughs_is_refused_quickly():
    # Nine levels: 9^9 strings; before, the schema check walked them for 10 s and more.
    assert "expands to more than" in refused(billion_laughs(9)).why
    assert "expands to more than" in refused(billion_laughs(6)).why  # 531,441: also over the bound


def test_aliases_that_refer_to_themselves_or_nest_past_the_bound_are_refused():
    assert "refers to itself" in refused("a: &a [*a]").why
    chain = "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 60))
    assert "through its aliases" in refused(chain).why


def test_a_document_over_the_size_bound_is_refused_before_parsing():
    e = refused(b"a: " + b"x" * PLAN_MAX_BYTES)
    assert str(PLAN_MAX_BYTES) in e.why


@pytest.mark.parametrize(("text", "path"), [
    ("plan_id: p\nversion: .nan\n", "version"),
    ("plan_id: p\nversion: .inf\n", "version"),
    ("plan_id: p\nversion: 1" + "0" * 30 + "\n", "version"),
    ("plan_id: !!binary aGVsbG8=\n", "plan_id"),
    ("plan_id: p\npayout: {hold_days: !!set {a, b}}\n", "payout.hold_days"),
])
def test_values_that_json_cannot_hold_are_refused_by_name(text, path):
    assert refused(text).path == path


def test_json_documents_are_bounded_too():
    assert refused(b'{"a": ' + b"[" * 500 + b"]" * 500 + b"}", "application/json").path \
        .startswith("a[0]")
    assert refused(b'{"version": 1e400}', "application/json").path == "(document)"
