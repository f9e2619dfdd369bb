"""Prometheus metrics from the store (`keel.observe.metrics`): what every process recorded, in the text format."""

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dashboard_agents import populate
from keel.observe.metrics import metrics_text
from keel.store import SQLiteStore
from keel.store.rollups import LATENCY_BUCKETS_S


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_a_scrape_reports_runs_tokens_cost_tools_escalations_and_loops(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keel.db'}"
    await populate(url, rounds=3)
    store = SQLiteStore(tmp_path / "keel.db")
    runs = await store.list_runs(limit=100)
    s = _samples(await metrics_text(store))

    assert s[("keel_runs_started_total", (("agent", "support"),))] == 6
    assert s[("keel_runs_finished_total", (("agent", "research"), ("status", "failed")))] == 1
    assert s[("keel_runs", (("status", "escalated"),))] == 1
    assert s[("keel_reviews_pending", ())] == 1
    assert s[("keel_escalations_total", (("agent", "refund-desk"), ("trigger", "severity")))] == 1
    assert s[("keel_loops_total", (("action", "break"), ("agent", "research"), ("kind", "repeat")))] == 1
    mini = (("agent", "support"), ("model", "openai:gpt-4o-mini"), ("phase", "execution"))
    assert s[("keel_model_calls_total", mini)] == 3 * 3 + 3 * 2  # three order questions and three CRM notes
    tokens = sum(v for (name, _), v in s.items() if name == "keel_tokens_total")
    assert tokens == sum(run.total_tokens for run in runs)
    cost = sum(v for (name, _), v in s.items() if name == "keel_cost_usd_total")
    assert cost == pytest.approx(sum(run.cost_usd for run in runs))
    store.close()


async def test_tool_latency_is_a_cumulative_histogram_per_tool(tmp_path: Path) -> None:
    await populate(f"sqlite:///{tmp_path / 'keel.db'}", rounds=2)
    store = SQLiteStore(tmp_path / "keel.db")
    s = _samples(await metrics_text(store))
    tool = (("agent", "tracking"), ("tool", "track_parcel"))
    counts = [
        s[("keel_tool_duration_seconds_bucket", tuple(sorted((*tool, ("le", f"{b:g}")))))] for b in LATENCY_BUCKETS_S
    ]
    assert counts == sorted(counts)  # cumulative
    assert s[("keel_tool_duration_seconds_count", tool)] == 4  # two runs, each a failed attempt and its retry
    assert s[("keel_tool_calls_total", (*tool[:1], ("outcome", "error"), tool[1]))] == 2
    assert s[("keel_retries_total", (("agent", "tracking"), ("target", "track_parcel")))] == 2
    store.close()


async def test_an_empty_store_scrapes_cleanly(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "keel.db")
    s = _samples(await metrics_text(store))
    assert s[("keel_reviews_pending", ())] == 0
    assert all(v == 0 for (name, _), v in s.items() if name == "keel_runs")
    store.close()
