"""A policy's monthly budget (issue 24): read into BudgetSpec; a bad one refused at load, naming the field."""

from __future__ import annotations

import json

import pytest

from shared.policy.document import BudgetSpec, PolicyError, load_policies


def _doc(budget) -> str:
    return json.dumps({"version": 1, "policies": {"gold": {"schedule": {"every_hours": 4}, "snapshots": {},
                                                           "budget": budget}}})


def test_a_budget_is_read_with_its_currency():
    assert load_policies(_doc({"monthly": 120.0, "currency": "EUR"})).policies["gold"].budget == BudgetSpec(120.0, "EUR")
    assert load_policies(_doc({"monthly": 5})).policies["gold"].budget == BudgetSpec(5.0, "USD")


@pytest.mark.parametrize(("budget", "message"), [
    ({"monthly": 0}, "policies.gold.budget.monthly: must be a positive amount"),
    ({"monthly": -3.5}, "policies.gold.budget.monthly: must be a positive amount"),
    ({"monthly": "120"}, "policies.gold.budget.monthly: must be a positive amount"),
    ({"currency": "USD"}, "policies.gold.budget.monthly: is required"),
    ({"monthly": 10, "currency": "dollars"}, "policies.gold.budget.currency: must be an ISO 4217 currency code"),
    ({"monthly": 10, "weekly": 2}, "policies.gold.budget.weekly: unknown field"),
])
def test_a_bad_budget_is_refused_naming_the_field(budget, message):
    with pytest.raises(PolicyError) as refused:
        load_policies(_doc(budget))
    assert any(e.startswith(message) for e in refused.value.errors), refused.value.errors
