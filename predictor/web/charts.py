"""Server-side SVG charts for the HTML pages: pure functions from numbers to markup.

No JavaScript and no plotting library: the pages must work with scripts disabled and under a
strict Content-Security-Policy, so charts are plain SVG drawn here. Colours and fonts come from
CSS classes in ``predictor/static/predictor/site.css`` rather than inline ``style`` attributes.
Every piece of text that reaches the markup goes through :func:`django.utils.html.escape`;
numbers are formatted here, never interpolated raw.

Each chart is an ``<svg role="img">`` labelled by its ``<title>`` and ``<desc>``, so a screen
reader announces what the chart shows instead of reading out tick labels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

__all__ = ["PRIVATE_DATA_NOTE", "LinearScale", "Plot", "fit_chart", "loss_chart", "nice_ticks"]

PRIVATE_DATA_NOTE = "Training points are not shown for private data."

# The drawing is scaled to the container's width; these are viewBox units, not pixels. A modest
# width keeps the 13-unit labels legible when a phone shrinks the chart to ~340 px.
WIDTH = 520
HEIGHT = 340
MARGIN_LEFT = 76
MARGIN_RIGHT = 16
MARGIN_TOP = 16
MARGIN_BOTTOM = 52


@dataclass(frozen=True)
class LinearScale:
    """Maps a data interval ``domain`` onto a drawing interval ``range`` (which may be reversed)."""

    domain: tuple[float, float]
    range: tuple[float, float]

    def __call__(self, value: float) -> float:
        d0, d1 = self.domain
        r0, r1 = self.range
        if d1 == d0:
            return (r0 + r1) / 2
        return r0 + (value - d0) * (r1 - r0) / (d1 - d0)


@dataclass(frozen=True)
class Plot:
    """The plotting area inside the margins and the scales that map data into it."""

    x: LinearScale
    y: LinearScale
    x_ticks: tuple[float, ...] = ()
    y_ticks: tuple[float, ...] = ()
    left: float = MARGIN_LEFT
    right: float = WIDTH - MARGIN_RIGHT
    top: float = MARGIN_TOP
    bottom: float = HEIGHT - MARGIN_BOTTOM

    @classmethod
    def for_ticks(cls, x_ticks: Sequence[float], y_ticks: Sequence[float]) -> Plot:
        """A plot whose axes run from the first to the last tick."""
        left, right = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
        top, bottom = MARGIN_TOP, HEIGHT - MARGIN_BOTTOM
        # SVG's y axis points down, so larger values map to smaller y.
        return cls(
            x=LinearScale((x_ticks[0], x_ticks[-1]), (left, right)),
            y=LinearScale((y_ticks[0], y_ticks[-1]), (bottom, top)),
            x_ticks=tuple(x_ticks),
            y_ticks=tuple(y_ticks),
        )


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 × 10ⁿ) covering ``[low, high]``, ends included.

    >>> nice_ticks(18.2, 42.1)
    [15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0]
    >>> nice_ticks(3, 3)
    [2.6, 2.8, 3.0, 3.2, 3.4]
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("tick bounds must be finite numbers")
    if high < low:
        low, high = high, low
    if high == low:
        # A single value: give it a unit of room either side so the axis is not degenerate.
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw_step = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw_step)
    first = math.floor(low / step) * step
    last = math.ceil(high / step) * step
    n = round((last - first) / step)
    # Round away the float noise of repeated additions (0.30000000000000004).
    digits = max(0, -math.floor(math.log10(step)) + 1)
    return [float(round(first + i * step, digits)) for i in range(n + 1)]


def _num(value: float) -> str:
    """A coordinate for the markup: two decimals, no exponent, no '-0'."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _label(value: float) -> str:
    """A tick label: no trailing '.0'; 10,000 and above in thousands ("25k") to fit the margin."""
    if abs(value) >= 10_000 and value % 1000 == 0:
        return f"{value / 1000:g}k"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.6g}"


def _svg_open(chart_id: str, title: str, desc: str, extra_class: str) -> list[str]:
    chart_id = escape(chart_id)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {escape(extra_class)}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" id="{chart_id}">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>',
    ]


def _axes(plot: Plot, x_title: str, y_title: str) -> list[str]:
    x_ticks, y_ticks = plot.x_ticks, plot.y_ticks
    parts = ['<g class="grid" aria-hidden="true">']
    for tick in y_ticks:
        y = _num(plot.y(tick))
        parts.append(f'<line x1="{_num(plot.left)}" y1="{y}" x2="{_num(plot.right)}" y2="{y}"/>')
    for tick in x_ticks:
        x = _num(plot.x(tick))
        parts.append(f'<line x1="{x}" y1="{_num(plot.top)}" x2="{x}" y2="{_num(plot.bottom)}"/>')
    parts.append("</g>")
    parts.append('<g class="axis" aria-hidden="true">')
    parts.append(
        f'<line x1="{_num(plot.left)}" y1="{_num(plot.bottom)}" x2="{_num(plot.right)}" y2="{_num(plot.bottom)}"/>'
    )
    parts.append(
        f'<line x1="{_num(plot.left)}" y1="{_num(plot.top)}" x2="{_num(plot.left)}" y2="{_num(plot.bottom)}"/>'
    )
    for tick in x_ticks:
        parts.append(
            f'<text class="tick tick-x" x="{_num(plot.x(tick))}" y="{_num(plot.bottom + 18)}" '
            f'text-anchor="middle">{escape(_label(tick))}</text>'
        )
    for tick in y_ticks:
        parts.append(
            f'<text class="tick tick-y" x="{_num(plot.left - 8)}" y="{_num(plot.y(tick) + 4)}" '
            f'text-anchor="end">{escape(_label(tick))}</text>'
        )
    centre_x = (plot.left + plot.right) / 2
    centre_y = (plot.top + plot.bottom) / 2
    parts.append(
        f'<text class="axis-title" x="{_num(centre_x)}" y="{_num(HEIGHT - 10)}" '
        f'text-anchor="middle">{escape(x_title)}</text>'
    )
    parts.append(
        f'<text class="axis-title" x="16" y="{_num(centre_y)}" text-anchor="middle" '
        f'transform="rotate(-90 16 {_num(centre_y)})">{escape(y_title)}</text>'
    )
    parts.append("</g>")
    return parts


def _finite_pairs(sample: Iterable[Sequence[float]]) -> list[tuple[float, float]]:
    pairs = []
    for pair in sample:
        x, y = float(pair[0]), float(pair[1])
        if math.isfinite(x) and math.isfinite(y):
            pairs.append((x, y))
    return pairs


def fit_plot(
    *, sample: Sequence[Sequence[float]], slope: float, intercept: float, patient: tuple[float, float] | None = None
) -> Plot:
    """The plot area and scales :func:`fit_chart` uses for these data (exposed for tests)."""
    pairs = _finite_pairs(sample)
    xs = [x for x, _ in pairs] + ([patient[0]] if patient else [])
    if not xs:
        xs = [20.0, 35.0]
    x_ticks = nice_ticks(min(xs), max(xs))
    x_lo, x_hi = x_ticks[0], x_ticks[-1]
    ys = [y for _, y in pairs] + [slope * x_lo + intercept, slope * x_hi + intercept]
    if patient:
        ys.append(patient[1])
    return Plot.for_ticks(x_ticks, nice_ticks(min(ys), max(ys)))


def fit_chart(
    *,
    sample: Sequence[Sequence[float]],
    slope: float,
    intercept: float,
    patient: tuple[float, float] | None = None,
    chart_id: str = "fit-chart",
    title: str = "Training data and fitted line",
    x_title: str = "BMI (kg/m²)",
    y_title: str = "Progression after 1 year",
    band: Callable[[float], float] | None = None,
    band_level: float = 0.95,
) -> SafeString:
    """Scatter of the training ``sample`` ([bmi, progression] pairs), the fitted line, and ``patient``.

    ``patient`` is ``(bmi, predicted progression)``; it is drawn last and larger so it stays on
    top of the training points. ``band`` gives the prediction interval's half-width at a BMI; the
    interval is shaded around the line (behind the points) and said in the description.
    """
    pairs = _finite_pairs(sample)
    plot = fit_plot(sample=pairs, slope=slope, intercept=intercept, patient=patient)
    x_lo, x_hi = plot.x.domain

    sign = "−" if intercept < 0 else "+"
    line = f"Fitted line: progression = {slope:.2f} × BMI {sign} {abs(intercept):.1f}."
    if pairs:
        desc = (
            f"Scatter plot of {len(pairs)} training patients, BMI in kg/m² against disease progression "
            f"one year after baseline. {line}"
        )
    else:
        # Only the public data set's rows are stored for display (predictor.registry.services._training_sample).
        desc = f"{PRIVATE_DATA_NOTE} {line}"
    if band is not None:
        desc += f" Shaded: the {band_level:.0%} prediction interval around the line."
    if patient is not None:
        desc += f" Highlighted: this patient, BMI {patient[0]:g}, predicted progression {patient[1]:.1f}."
    parts = _svg_open(chart_id, title, desc, "chart-fit")
    parts += _axes(plot, x_title, y_title)

    # Points outside the domain cannot occur (the domain covers them); the clip is for the line.
    clip = f"{escape(chart_id)}-clip"
    parts.append(
        f'<clipPath id="{clip}"><rect x="{_num(plot.left)}" y="{_num(plot.top)}" '
        f'width="{_num(plot.right - plot.left)}" height="{_num(plot.bottom - plot.top)}"/></clipPath>'
    )
    if band is not None:
        parts.append(_band(plot, slope, intercept, band, clip))
    parts.append('<g class="points" aria-hidden="true">')
    parts.extend(f'<circle cx="{_num(plot.x(x))}" cy="{_num(plot.y(y))}" r="3"/>' for x, y in pairs)
    parts.append("</g>")
    parts.append(
        f'<line class="fit-line" clip-path="url(#{clip})" '
        f'x1="{_num(plot.x(x_lo))}" y1="{_num(plot.y(slope * x_lo + intercept))}" '
        f'x2="{_num(plot.x(x_hi))}" y2="{_num(plot.y(slope * x_hi + intercept))}"/>'
    )
    if patient is not None:
        px, py = plot.x(patient[0]), plot.y(patient[1])
        parts.append('<g class="patient" aria-hidden="true">')
        # Guides down to the BMI axis and across to the progression axis, to read the values off.
        parts.append(f'<line class="guide" x1="{_num(px)}" y1="{_num(py)}" x2="{_num(px)}" y2="{_num(plot.bottom)}"/>')
        parts.append(f'<line class="guide" x1="{_num(plot.left)}" y1="{_num(py)}" x2="{_num(px)}" y2="{_num(py)}"/>')
        parts.append(f'<circle class="patient-point" cx="{_num(px)}" cy="{_num(py)}" r="7"/>')
        # Label to the left of the point when it sits in the right third, so it stays inside.
        anchor, dx = ("end", -12) if px > plot.left + (plot.right - plot.left) * 2 / 3 else ("start", 12)
        parts.append(
            f'<text class="patient-label" x="{_num(px + dx)}" y="{_num(py - 10)}" text-anchor="{anchor}">'
            f"{escape(f'{patient[1]:.1f}')}</text>"
        )
        parts.append("</g>")
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated text is escaped above


def _band(plot: Plot, slope: float, intercept: float, half_width: Callable[[float], float], clip: str) -> str:
    """The interval band as one polygon: the upper edge left to right, the lower edge back."""
    x_lo, x_hi = plot.x.domain
    # The band's edges are hyperbolas; 24 straight pieces draw them smoothly at this size.
    xs = [x_lo + (x_hi - x_lo) * i / 24 for i in range(25)]
    upper = [(x, slope * x + intercept + half_width(x)) for x in xs]
    lower = [(x, slope * x + intercept - half_width(x)) for x in reversed(xs)]
    points = " ".join(f"{_num(plot.x(x))},{_num(plot.y(y))}" for x, y in upper + lower)
    return f'<polygon class="fit-band" clip-path="url(#{clip})" aria-hidden="true" points="{points}"/>'


def loss_chart(
    *,
    losses: Sequence[float],
    n_epochs: int | None = None,
    chart_id: str = "loss-chart",
    title: str = "Training loss by epoch",
) -> SafeString:
    """Line chart of the training MSE after each epoch.

    ``losses`` may be a downsampled curve (evenly spaced, first and last epochs kept); ``n_epochs``
    is the true number of epochs, so the x axis is labelled in epochs rather than in points.
    """
    values = [float(v) for v in losses if math.isfinite(float(v))]
    n_epochs = int(n_epochs or len(values) or 1)
    if len(values) > 1:
        epochs = [1 + i * (n_epochs - 1) / (len(values) - 1) for i in range(len(values))]
    else:
        epochs = [float(n_epochs)] * len(values)
    # Whole epochs only: one or two epochs would otherwise get ticks at 1.2, 1.4, ...
    x_ticks = [1.0, 2.0] if n_epochs <= 2 else nice_ticks(1, n_epochs)
    x_ticks = [t for t in x_ticks if t >= 0] or [0.0, 1.0]
    y_ticks = nice_ticks(min(values, default=0.0), max(values, default=1.0))
    plot = Plot.for_ticks(x_ticks, y_ticks)

    if values:
        desc = (
            f"Line chart of the training mean squared error over {n_epochs} epoch{'s' if n_epochs != 1 else ''}: "
            f"from {values[0]:,.1f} after the first epoch to {values[-1]:,.1f} after the last."
        )
    else:
        desc = "No loss curve was recorded for this version."
    parts = _svg_open(chart_id, title, desc, "chart-loss")
    parts += _axes(plot, "Epoch", "Training MSE")
    if values:
        points = " ".join(f"{_num(plot.x(e))},{_num(plot.y(v))}" for e, v in zip(epochs, values, strict=True))
        parts.append(f'<polyline class="loss-line" points="{points}"/>')
        if len(values) == 1:  # a polyline of one point draws nothing
            x, y = _num(plot.x(epochs[0])), _num(plot.y(values[0]))
            parts.append(f'<circle class="loss-point" cx="{x}" cy="{y}" r="4"/>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated text is escaped above
