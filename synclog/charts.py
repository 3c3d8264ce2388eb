"""Server-rendered inline SVG charts for the ops dashboard (no JavaScript, nothing
loaded from elsewhere): hourly pushes/errors as stacked bars, latency as lines."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 480, 150
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 22
PLOT_W = WIDTH - LEFT - RIGHT
PLOT_H = HEIGHT - TOP - BOTTOM


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at or above value (axis maximum)."""
    if value <= 0:
        return 1
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        candidate = step * 10**exponent
        if candidate >= value:
            return candidate
    return 10 ** (exponent + 1)


def _fmt(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _y(value: float, top: float) -> float:
    return TOP + PLOT_H - (value / top) * PLOT_H


def _axes(top: float, starts: Sequence[datetime]) -> list[str]:
    parts = []
    for fraction in (0, 0.5, 1):
        y = _y(top * fraction, top)
        parts.append(
            f'<line class="ps-grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text class="ps-axis" x="{LEFT - 4}" y="{y + 3:.1f}" text-anchor="end">'
            f"{_fmt(top * fraction)}</text>"
        )
    slot = PLOT_W / max(len(starts), 1)
    for i, start in enumerate(starts):
        if i % 6 == 0:
            x = LEFT + slot * i + slot / 2
            parts.append(
                f'<text class="ps-axis" x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
                f"{start:%H:%M}</text>"
            )
    return parts


def _svg(label: str, parts: list[str]) -> SafeString:
    return format_html(
        '<svg class="ps-chart" viewBox="0 0 {} {}" role="img" aria-label="{}" '
        'preserveAspectRatio="xMidYMid meet">{}</svg>',
        WIDTH,
        HEIGHT,
        label,
        mark_safe("".join(parts)),  # noqa: S308 - built here from numbers and escaped text
    )


def bars_chart(
    *, label: str, starts: Sequence[datetime], pushes: Sequence[int], errors: Sequence[int]
) -> SafeString:
    """Stacked hourly bars: successful pushes below, failed attempts on top."""
    top = nice_ceiling(max((p + e for p, e in zip(pushes, errors, strict=True)), default=0))
    parts = _axes(top, starts)
    slot = PLOT_W / max(len(starts), 1)
    bar_w = max(slot * 0.7, 1)
    for i, (start, ok, bad) in enumerate(zip(starts, pushes, errors, strict=True)):
        x = LEFT + slot * i + (slot - bar_w) / 2
        tip = escape(f"{start:%H:%M}: {ok} pushed, {bad} failed")
        y_ok = _y(ok, top)
        y_all = _y(ok + bad, top)
        parts.append(f"<g><title>{tip}</title>")
        if ok:
            parts.append(
                f'<rect class="ps-bar-ok" x="{x:.1f}" y="{y_ok:.1f}" width="{bar_w:.1f}" '
                f'height="{TOP + PLOT_H - y_ok:.1f}"/>'
            )
        if bad:
            parts.append(
                f'<rect class="ps-bar-bad" x="{x:.1f}" y="{y_all:.1f}" width="{bar_w:.1f}" '
                f'height="{y_ok - y_all:.1f}"/>'
            )
        # An invisible full-height target so the tooltip works on empty hours too.
        parts.append(
            f'<rect class="ps-hit" x="{x:.1f}" y="{TOP}" width="{bar_w:.1f}" height="{PLOT_H}"/>'
        )
        parts.append("</g>")
    return _svg(label, parts)


def _line_segments(values: Sequence[int | None], top: float) -> list[list[tuple[float, float]]]:
    """Points of a line, split where an hour has no value (no line is drawn across a gap)."""
    slot = PLOT_W / max(len(values), 1)
    segments: list[list[tuple[float, float]]] = [[]]
    for i, value in enumerate(values):
        if value is None:
            if segments[-1]:
                segments.append([])
            continue
        segments[-1].append((LEFT + slot * i + slot / 2, _y(value, top)))
    return [s for s in segments if s]


def lines_chart(
    *,
    label: str,
    starts: Sequence[datetime],
    series: Sequence[tuple[str, str, Sequence[int | None]]],
) -> SafeString:
    """Hourly lines; `series` is (name, css class, values) per line."""
    peak = max((v for _, _, values in series for v in values if v is not None), default=0)
    top = nice_ceiling(peak)
    parts = _axes(top, starts)
    for name, css, values in series:
        for segment in _line_segments(values, top):
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in segment)
            parts.append(f'<polyline class="{css}" points="{points}"/>')
            parts.extend(
                f'<circle class="{css}-dot" cx="{x:.1f}" cy="{y:.1f}" r="2"/>' for x, y in segment
            )
        slot = PLOT_W / max(len(values), 1)
        for i, (start, value) in enumerate(zip(starts, values, strict=True)):
            if value is not None:
                tip = escape(f"{start:%H:%M} {name}: {value} ms")
                x = LEFT + slot * i + slot / 2
                parts.append(
                    f'<circle class="ps-hit" cx="{x:.1f}" cy="{_y(value, top):.1f}" r="6">'
                    f"<title>{tip}</title></circle>"
                )
    return _svg(label, parts)
