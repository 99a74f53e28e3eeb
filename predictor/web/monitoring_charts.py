"""Small server-side SVG charts for the monitoring page: inline markup, nothing loaded from elsewhere.

Each function returns safe markup (numbers are formatted here; text goes through ``escape``).
"""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 480, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 30


def _svg(chart_id: str, title: str, body: list[str], desc: str = "") -> SafeString:
    """The chart's markup; ``desc`` tells a screen reader what a sighted reader takes from it."""
    chart_id = escape(chart_id)
    labelled_by = f"{chart_id}-title {chart_id}-desc" if desc else f"{chart_id}-title"
    head = (
        f'<svg id="{chart_id}" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
        f'role="img" aria-labelledby="{labelled_by}" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        + (f'<desc id="{chart_id}-desc">{escape(desc)}</desc>' if desc else "")
    )
    return mark_safe(head + "".join(body) + "</svg>")  # noqa: S308 - numbers formatted here, text escaped


def _empty(chart_id: str, title: str, message: str) -> SafeString:
    return _svg(
        chart_id,
        title,
        [f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="chart-empty">{escape(message)}</text>'],
    )


def _frame(y_low: float, y_high: float, y_label) -> list[str]:
    bottom = HEIGHT - BOTTOM
    parts = [
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="currentColor" stroke-width="1"/>',
        f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" stroke="currentColor" stroke-width="1"/>',
    ]
    for value in (y_low, (y_low + y_high) / 2, y_high):
        y = _y(value, y_low, y_high)
        parts.append(
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{escape(y_label(value))}</text>'
        )
    return parts


def _y(value: float, low: float, high: float) -> float:
    span = (high - low) or 1.0
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - (value - low) / span)


def _x_labels(labels: list[str]) -> list[str]:
    """First and last label under the x axis (enough to read a date range)."""
    if not labels:
        return []
    y = HEIGHT - BOTTOM + 16
    parts = [f'<text x="{LEFT}" y="{y}" font-size="10">{escape(labels[0])}</text>']
    if len(labels) > 1:
        parts.append(f'<text x="{WIDTH - RIGHT}" y="{y}" text-anchor="end" font-size="10">{escape(labels[-1])}</text>')
    return parts


def daily_bars(days, *, chart_id: str = "traffic") -> SafeString:
    """Predictions per day, one bar a day."""
    title = "Predictions per day"
    if not days:
        return _empty(chart_id, title, "No predictions yet")
    top = max(point.predictions for point in days) or 1
    plot_width = WIDTH - LEFT - RIGHT
    step = plot_width / len(days)
    parts = _frame(0, top, lambda v: f"{v:,.0f}")
    for i, point in enumerate(days):
        y = _y(point.predictions, 0, top)
        parts.append(
            f'<rect x="{LEFT + i * step + step * 0.1:.1f}" y="{y:.1f}" width="{max(step * 0.8, 0.5):.1f}" '
            f'height="{HEIGHT - BOTTOM - y:.1f}" fill="#3b6ea5">'
            f"<title>{point.day.isoformat()}: {point.predictions:,} predictions</title></rect>"
        )
    parts += _x_labels([days[0].day.isoformat(), days[-1].day.isoformat()])
    busiest = max(days, key=lambda point: point.predictions)
    desc = (
        f"Bar chart of predictions per day from {days[0].day.isoformat()} to {days[-1].day.isoformat()}: "
        f"{sum(point.predictions for point in days):,} in all, at most {busiest.predictions:,} "
        f"on {busiest.day.isoformat()}."
    )
    return _svg(chart_id, title, parts, desc)


def r2_lines(days, *, threshold: float, chart_id: str = "r2") -> SafeString:
    """Cumulative live R² per day, with the promotion threshold as a dashed line."""
    title = "Live R² (cumulative, by prediction day)"
    points = [(i, p.r2_cumulative) for i, p in enumerate(days) if p.r2_cumulative is not None]
    if not points:
        return _empty(chart_id, title, "Not enough observed outcomes yet")
    values = [v for _, v in points] + [threshold]
    low, high = min(min(values), 0.0), max(max(values), 1.0)
    plot_width = WIDTH - LEFT - RIGHT
    step = plot_width / max(len(days) - 1, 1)
    parts = _frame(low, high, lambda v: f"{v:.2f}")
    y_threshold = _y(threshold, low, high)
    parts.append(
        f'<line x1="{LEFT}" y1="{y_threshold:.1f}" x2="{WIDTH - RIGHT}" y2="{y_threshold:.1f}" '
        f'stroke="#b03a2e" stroke-dasharray="4 3"><title>Promotion threshold {threshold:g}</title></line>'
    )
    coordinates = " ".join(f"{LEFT + i * step:.1f},{_y(v, low, high):.1f}" for i, v in points)
    parts.append(f'<polyline points="{coordinates}" fill="none" stroke="#3b6ea5" stroke-width="2"/>')
    for i, v in points:
        parts.append(
            f'<circle cx="{LEFT + i * step:.1f}" cy="{_y(v, low, high):.1f}" r="2.5" fill="#3b6ea5">'
            f"<title>{days[i].day.isoformat()}: R² {v:.3f}</title></circle>"
        )
    parts += _x_labels([days[0].day.isoformat(), days[-1].day.isoformat()])
    (first_i, first), (last_i, last) = points[0], points[-1]
    desc = (
        f"Line chart of the cumulative live R²: {first:.3f} on {days[first_i].day.isoformat()}, "
        f"{last:.3f} on {days[last_i].day.isoformat()}, against the promotion threshold {threshold:g} "
        f"({'above' if last > threshold else 'not above'} it at the end)."
    )
    return _svg(chart_id, title, parts, desc)


def bmi_histogram(quality, *, chart_id: str = "bmi") -> SafeString:
    """Share of served BMIs per training decile bin (bars) over the training shares (outlines)."""
    title = "Served BMI over training BMI, per training decile bin"
    if not quality.training_fractions:
        return _empty(chart_id, title, "This version has no training histogram")
    served = quality.served_fractions
    training = quality.training_fractions
    top = max([*served, *training, 0.01])
    plot_width = WIDTH - LEFT - RIGHT
    step = plot_width / len(training)
    parts = _frame(0, top, lambda v: f"{v:.0%}")
    edges = quality.edges
    for i, (s, t) in enumerate(zip(served, training, strict=True)):
        low = "−∞" if i == 0 else f"{edges[i]:.1f}"
        high = "∞" if i == len(training) - 1 else f"{edges[i + 1]:.1f}"
        x = LEFT + i * step
        y_served = _y(s, 0, top)
        y_training = _y(t, 0, top)
        parts.append(
            f'<rect x="{x + step * 0.15:.1f}" y="{y_served:.1f}" width="{step * 0.7:.1f}" '
            f'height="{HEIGHT - BOTTOM - y_served:.1f}" fill="#3b6ea5" fill-opacity="0.7">'
            f"<title>BMI {low} to {high}: served {s:.1%}, training {t:.1%}</title></rect>"
        )
        parts.append(
            f'<rect x="{x + step * 0.05:.1f}" y="{y_training:.1f}" width="{step * 0.9:.1f}" '
            f'height="{HEIGHT - BOTTOM - y_training:.1f}" fill="none" stroke="#b03a2e" stroke-width="1.5"/>'
        )
    if edges:
        parts += _x_labels([f"{edges[0]:.1f} kg/m²", f"{edges[-1]:.1f} kg/m²"])
    widest = max(range(len(training)), key=lambda i: abs(served[i] - training[i]))
    desc = (
        f"Bar chart of the share of served BMIs in each of {len(training)} training decile bins, over "
        f"outlines of the training shares; the largest gap is in bin {widest + 1} "
        f"(served {served[widest]:.1%}, training {training[widest]:.1%})"
        + (f"; PSI {quality.psi:.3f}." if quality.psi is not None else ".")
    )
    return _svg(chart_id, title, parts, desc)
