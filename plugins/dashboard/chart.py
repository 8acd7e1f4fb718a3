"""Server-side SVG line charts: one per event type, no JavaScript, no external asset.

Each chart is an ``<svg role="img">`` whose ``<title>`` and ``<desc>`` say in words what the
lines show (how many values, from when to when, the range), so a screen reader gets the chart's
content and not "image". Axes carry their extreme values (y) and the first and last time (x, UTC).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 40  # room for the axis labels


@dataclass(frozen=True)
class Series:
    type: str
    unit: str | None
    points: list[tuple[datetime, float]]  # oldest first

    @property
    def minimum(self) -> float:
        return min(value for _, value in self.points)

    @property
    def maximum(self) -> float:
        return max(value for _, value in self.points)

    def description(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        first, last = self.points[0][0], self.points[-1][0]
        return (
            f"{len(self.points)} values of {self.type} from {_when(first)} to {_when(last)} UTC, "
            f"lowest {_number(self.minimum)}{unit}, highest {_number(self.maximum)}{unit}, "
            f"latest {_number(self.points[-1][1])}{unit}"
        )


def series_by_type(events: Sequence) -> list[Series]:
    """Events (newest first, with ``type``, ``value``, ``unit``, ``ts``) -> a series per type
    with a numeric value, oldest point first, types in alphabetical order."""
    grouped: dict[str, list] = {}
    for event in events:
        if event.value is not None:
            grouped.setdefault(event.type, []).append(event)
    return [
        Series(
            type=name,
            unit=rows[0].unit,
            points=[(row.ts, float(row.value)) for row in reversed(rows)],
        )
        for name, rows in sorted(grouped.items())
    ]


def svg(series: Series, chart_id: str) -> Markup:
    """The chart of one series as inline SVG markup (every text escaped)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    start, end = series.points[0][0], series.points[-1][0]
    span = (end - start).total_seconds() or 1.0
    low, high = series.minimum, series.maximum
    if low == high:  # a flat line sits in the middle
        low, high = low - 1, high + 1

    def x(moment: datetime) -> float:
        return LEFT + (moment - start).total_seconds() / span * plot_w

    def y(value: float) -> float:
        return TOP + (high - value) / (high - low) * plot_h

    points = " ".join(f"{x(moment):.1f},{y(value):.1f}" for moment, value in series.points)
    unit = f" ({series.unit})" if series.unit else ""
    bottom = TOP + plot_h
    return Markup(_SVG).format(  # noqa: S704  (a constant template; format escapes values)
        width=WIDTH,
        height=HEIGHT,
        id=chart_id,
        title=f"{series.type}{unit}",
        desc=series.description(),
        left=LEFT,
        top=TOP,
        right=WIDTH - RIGHT,
        bottom=bottom,
        label_x=LEFT - 6,
        high_y=TOP + 4,
        high=_number(high),
        low=_number(low),
        time_y=bottom + 18,
        start=_when(start),
        end=_when(end),
        middle=f"{LEFT + plot_w / 2:.0f}",
        axis_y=bottom + 34,
        y_middle=f"{-(TOP + plot_h / 2):.0f}",
        points=points,
        dot_x=f"{x(series.points[0][0]):.1f}",
        dot_y=f"{y(series.points[0][1]):.1f}",
        dot_r=3 if len(series.points) == 1 else 0,
    )


# Markup.format escapes every value put in: the template is the only markup.
_SVG = (
    '<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
    'aria-labelledby="{id}-title {id}-desc" xmlns="http://www.w3.org/2000/svg">'
    '<title id="{id}-title">{title}</title><desc id="{id}-desc">{desc}</desc>'
    '<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{bottom}"/>'
    '<line class="axis" x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}"/>'
    '<text class="label" x="{label_x}" y="{high_y}" text-anchor="end">{high}</text>'
    '<text class="label" x="{label_x}" y="{bottom}" text-anchor="end">{low}</text>'
    '<text class="label" x="{left}" y="{time_y}">{start}</text>'
    '<text class="label" x="{right}" y="{time_y}" text-anchor="end">{end} UTC</text>'
    '<text class="label" x="{middle}" y="{axis_y}" text-anchor="middle">time (UTC)</text>'
    '<text class="label" transform="rotate(-90)" x="{y_middle}" y="14" '
    'text-anchor="middle">{title}</text>'
    '<polyline class="line" points="{points}"/>'
    '<circle cx="{dot_x}" cy="{dot_y}" r="{dot_r}"/>'
    "</svg>"
)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _number(value: float) -> str:
    return f"{value:.6g}"
