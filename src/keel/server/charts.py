"""Charts drawn on the server as inline SVG: no script, no library, nothing to download, readable without JS.

A bar per bucket, a hover title per bar, the largest value on the y axis and the first and last times on the x
axis; an optional dashed line for a limit (a spending ceiling). Only numbers and formatted times reach the
markup, and they are escaped anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from html import escape

from markupsafe import Markup

from .models import Point

__all__ = ["bar_chart"]

_W, _H, _LEFT, _BOTTOM, _TOP = 640, 160, 56, 22, 10


def bar_chart(
    points: Sequence[Point],
    *,
    label: str,
    fmt: Callable[[float], str],
    time_fmt: str = "%H:%M",
    limit: float | None = None,
    utc: bool = False,
) -> Markup:
    """An SVG bar chart of `points`, values shown with `fmt`, with a dashed line at `limit` when given.

    A limit more than four times the highest bar is named in a corner instead, so the bars keep their shape.

    Times are labelled in local time, or in UTC with `utc` (day buckets start at midnight UTC).
    """
    zone = UTC if utc else None
    highest = max([p.value for p in points] + [0.0])
    # A limit far above the data would flatten the bars: then it is named, not drawn to scale.
    drawn = limit is not None and limit > 0 and (highest == 0 or limit <= 4 * highest)
    top = max(highest, limit if drawn and limit is not None else 0.0)
    scale = top if top > 0 else 1.0
    plot_w, plot_h = _W - _LEFT - 8, _H - _BOTTOM - _TOP
    bar_w = plot_w / max(len(points), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>',
        f'<line class="axis" x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_W - 8}" y2="{_TOP + plot_h}"/>',
        f'<text class="tick" x="{_LEFT - 6}" y="{_TOP + 8}" text-anchor="end">{escape(fmt(top))}</text>',
        f'<text class="tick" x="{_LEFT - 6}" y="{_TOP + plot_h}" text-anchor="end">{escape(fmt(0))}</text>',
    ]
    for i, point in enumerate(points):
        height = plot_h * point.value / scale
        when = datetime.fromtimestamp(point.ts, zone).strftime(time_fmt)
        parts.append(
            f'<rect class="bar" x="{_LEFT + i * bar_w + 0.5:.1f}" y="{_TOP + plot_h - height:.1f}" '
            f'width="{max(bar_w - 1, 0.5):.1f}" height="{height:.1f}"><title>{escape(when)}: '
            f"{escape(fmt(point.value))}</title></rect>"
        )
    if limit is not None and limit > 0 and not drawn:
        label = escape(f"limit {fmt(limit)}: off this scale")
        parts.append(f'<text class="limit-label" x="{_W - 10}" y="{_TOP + 8}" text-anchor="end">{label}</text>')
    elif limit is not None and limit > 0:
        y = _TOP + plot_h - plot_h * limit / scale
        parts.append(f'<line class="limit" x1="{_LEFT}" y1="{y:.1f}" x2="{_W - 8}" y2="{y:.1f}"/>')
        label = escape(f"limit {fmt(limit)}")
        parts.append(f'<text class="limit-label" x="{_W - 10}" y="{y - 3:.1f}" text-anchor="end">{label}</text>')
    if points:
        first = datetime.fromtimestamp(points[0].ts, zone).strftime(time_fmt)
        last = datetime.fromtimestamp(points[-1].ts, zone).strftime(time_fmt)
        parts.append(f'<text class="tick" x="{_LEFT}" y="{_H - 6}">{escape(first)}</text>')
        parts.append(f'<text class="tick" x="{_W - 8}" y="{_H - 6}" text-anchor="end">{escape(last)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
