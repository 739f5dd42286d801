"""What a stored definition says of retention, and RUN_RETENTION_DAYS beside it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.domain.retention import Retention

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_a_stored_definition_says_its_retention() -> None:
    stored = {"flow": "f", "retention": {"days": 3, "max_runs": 10}, "steps": []}
    assert Retention.of_document(stored) == Retention(3, 10)


def test_definitions_without_one_keep_everything_unless_the_service_says_otherwise() -> None:
    for stored in ({"flow": "f"}, {"id": "graph", "tasks": []}, None, {"retention": "x"}):
        assert Retention.of_document(stored).keeps_everything
    assert Retention.of_document({"flow": "f"}).or_days(30) == Retention(days=30)


def test_a_flows_own_days_win_over_the_services() -> None:
    assert Retention(days=365).or_days(30) == Retention(days=365)
    assert Retention(max_runs=5).or_days(30) == Retention(30, 5)
    assert Retention(max_runs=5).or_days(None) == Retention(max_runs=5)


def test_the_age_cutoff_is_days_before_now() -> None:
    assert Retention(days=2).age_cutoff(NOW) == NOW - timedelta(days=2)
    assert Retention(max_runs=2).age_cutoff(NOW) is None
