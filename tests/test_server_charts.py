"""The dashboard's inline SVG charts: bars to scale, a limit drawn when comparable, named when far above."""

from keel.server.charts import bar_chart
from keel.server.models import Point


def _money(value: float) -> str:
    return f"${value:.2f}"


def test_a_limit_near_the_bars_is_a_dashed_line_on_the_same_scale() -> None:
    svg = bar_chart([Point(ts=0, value=1.0), Point(ts=3600, value=3.0)], label="cost", fmt=_money, limit=4.0)
    assert svg.count('class="bar"') == 2 and 'class="limit"' in svg and "$4.00" in svg


def test_a_limit_far_above_the_bars_is_named_so_the_bars_keep_their_shape() -> None:
    svg = bar_chart([Point(ts=0, value=0.1), Point(ts=3600, value=0.2)], label="cost", fmt=_money, limit=10.0)
    assert 'class="limit"' not in svg and "limit $10.00: off this scale" in svg
    assert 'y="10.0" width' in svg  # the highest bar reaches the top of the plot


def test_labels_are_escaped() -> None:
    svg = bar_chart([Point(ts=0, value=1.0)], label="<script>", fmt=lambda v: "<b>")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "<b>" not in svg
