"""Server-side SVG charts for the HTML pages: pure functions from numbers to markup.

One kit for every chart (the model pages' fit and loss charts, the monitoring page's traffic,
live-R² and BMI-histogram charts): one drawing width, one set of margins, the same axes with
titles and round ticks, and text sized by CSS classes (``.chart .tick`` and friends), so one
media query keeps every chart's text readable on a phone.

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

__all__ = [
    "PRIVATE_DATA_NOTE",
    "LinearScale",
    "Plot",
    "bmi_histogram",
    "daily_bars",
    "fit_chart",
    "loss_chart",
    "nice_ticks",
    "r2_lines",
]

PRIVATE_DATA_NOTE = "Training points are not shown for private data."

# The drawing is scaled to the container's width; these are viewBox units, not pixels. Every chart
# has the same width, so a phone shrinks all of them by the same factor (~0.62 at 390 px) and the
# stylesheet's one phone rule scales their text back up. A modest width keeps that factor small.
WIDTH = 520
HEIGHT = 340
# The monitoring page shows three charts per version: lower, same width.
SMALL_HEIGHT = 260
MARGIN_LEFT = 76
MARGIN_RIGHT = 16
# Room above the plot for the y axis title, which sits there level rather than rotated beside the
# tick labels, so that no label, however wide, can run into it.
MARGIN_TOP = 40
MARGIN_BOTTOM = 56


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

    height: float = HEIGHT

    @classmethod
    def for_ticks(
        cls,
        x_ticks: Sequence[float],
        y_ticks: Sequence[float],
        *,
        x_domain: tuple[float, float] | None = None,
        height: float = HEIGHT,
    ) -> Plot:
        """A plot whose axes run from the first to the last tick (x: or over ``x_domain``)."""
        left, right = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
        top, bottom = MARGIN_TOP, height - MARGIN_BOTTOM
        # SVG's y axis points down, so larger values map to smaller y.
        return cls(
            x=LinearScale(x_domain or (x_ticks[0], x_ticks[-1]), (left, right)),
            y=LinearScale((y_ticks[0], y_ticks[-1]), (bottom, top)),
            x_ticks=tuple(x_ticks),
            y_ticks=tuple(y_ticks),
            left=left,
            right=right,
            top=top,
            bottom=bottom,
            height=height,
        )

    @classmethod
    def for_bands(cls, n: int, y_ticks: Sequence[float], *, x_ticks: Sequence[float], height: float) -> Plot:
        """A plot of ``n`` equal bands (days, bins): band ``i`` is centred on x = ``i``."""
        return cls.for_ticks(x_ticks, y_ticks, x_domain=(-0.5, max(n, 1) - 0.5), height=height)

    def band_width(self) -> float:
        """The width of one band in drawing units (see :meth:`for_bands`)."""
        return abs(self.x(1.0) - self.x(0.0))


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
    """A tick label: no trailing '.0'; round thousands as "2.5k", so that no label outgrows the margin."""
    if abs(value) >= 1000 and value % 100 == 0:
        return f"{value / 1000:g}k"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.6g}"


def _svg_open(chart_id: str, title: str, desc: str, extra_class: str, *, height: float = HEIGHT) -> list[str]:
    """The ``<svg role="img">`` element, labelled by its title and a description of what it shows."""
    chart_id = escape(chart_id)
    return [
        f'<svg id="{chart_id}" xmlns="http://www.w3.org/2000/svg" class="chart {escape(extra_class)}" '
        f'viewBox="0 0 {WIDTH} {_num(height)}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>',
    ]


def _svg_close(parts: list[str]) -> SafeString:
    return mark_safe("".join([*parts, "</svg>"]))  # noqa: S308 - every interpolated text is escaped


def _empty(chart_id: str, title: str, message: str, extra_class: str) -> SafeString:
    """A chart with nothing to draw: the same box, saying why in words (and to a screen reader)."""
    parts = _svg_open(chart_id, title, message, f"{extra_class} chart-no-data", height=SMALL_HEIGHT)
    parts.append(
        f'<text class="chart-empty" x="{WIDTH / 2:g}" y="{SMALL_HEIGHT / 2:g}" text-anchor="middle" '
        f'aria-hidden="true">{escape(message)}</text>'
    )
    return _svg_close(parts)


def _axes(
    plot: Plot,
    x_title: str,
    y_title: str,
    *,
    x_format: Callable[[float], str] = _label,
    y_format: Callable[[float], str] = _label,
    x_grid: bool = True,
) -> list[str]:
    """Grid, axis lines, tick labels and the two axis titles of ``plot``."""
    x_ticks, y_ticks = plot.x_ticks, plot.y_ticks
    parts = ['<g class="grid" aria-hidden="true">']
    for tick in y_ticks:
        y = _num(plot.y(tick))
        parts.append(f'<line x1="{_num(plot.left)}" y1="{y}" x2="{_num(plot.right)}" y2="{y}"/>')
    for tick in x_ticks if x_grid else ():
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
            # Low enough that the first label clears the y axis's lowest one at the origin.
            f'<text class="tick tick-x" x="{_num(plot.x(tick))}" y="{_num(plot.bottom + 26)}" '
            f'text-anchor="middle">{escape(x_format(tick))}</text>'
        )
    for tick in y_ticks:
        parts.append(
            f'<text class="tick tick-y" x="{_num(plot.left - 12)}" y="{_num(plot.y(tick) + 4)}" '
            f'text-anchor="end">{escape(y_format(tick))}</text>'
        )
    centre_x = (plot.left + plot.right) / 2
    parts.append(
        f'<text class="axis-title" x="{_num(centre_x)}" y="{_num(plot.height - 8)}" '
        f'text-anchor="middle">{escape(x_title)}</text>'
    )
    parts.append(f'<text class="axis-title" x="4" y="20" text-anchor="start">{escape(y_title)}</text>')
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


# Room a patient label needs beside its point (drawing units; "350.0" in the phone's large text).
LABEL_ROOM = 72


def _patient_label_place(plot: Plot, px: float, *, rising: bool) -> tuple[str, float, float]:
    """Where the patient's value label goes: (text-anchor, dx, dy) from the point.

    Above the point on the side the fitted line falls away from (upper left of a rising line),
    so the line never crosses it; below on the other side when that would leave the plot.
    The guides run left and down from the point, so neither crosses the label either.
    """
    if rising:
        return ("end", -12, -12) if px - plot.left > LABEL_ROOM else ("start", 12, 26)
    return ("start", 12, -12) if plot.right - px > LABEL_ROOM else ("end", -12, 26)


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
        anchor, dx, dy = _patient_label_place(plot, px, rising=slope > 0)
        parts.append(
            f'<text class="patient-label" x="{_num(px + dx)}" y="{_num(py + dy)}" text-anchor="{anchor}">'
            f"{escape(f'{patient[1]:.1f}')}</text>"
        )
        parts.append("</g>")
    return _svg_close(parts)


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
    return _svg_close(parts)


def _day(day, *, year: bool = False) -> str:
    """A day for a tick label: "1 Dec" (with the year when it is the only label)."""
    return f"{day.day} {day:%b %Y}" if year else f"{day.day} {day:%b}"


def _band_ticks(n: int, most: int = 4) -> list[float]:
    """At most ``most`` evenly spread band indices, first and last included, for the labels."""
    if n <= most:
        return [float(i) for i in range(n)]
    return sorted({float(round(i * (n - 1) / (most - 1))) for i in range(most)})


def _count_ticks(top: int) -> list[float]:
    """Ticks for a count: whole numbers only (a day has no half prediction)."""
    if top <= 5:
        return [float(i) for i in range(max(top, 1) + 1)]
    return nice_ticks(0, top)


def _bar(plot: Plot, centre: float, value: float, width: float, css_class: str, tooltip: str = "") -> str:
    x = plot.x(centre) - width / 2
    y = plot.y(value)
    tip = f"<title>{escape(tooltip)}</title>" if tooltip else ""
    return (
        f'<rect class="{css_class}" x="{_num(x)}" y="{_num(y)}" width="{_num(width)}" '
        f'height="{_num(max(plot.bottom - y, 0))}">{tip}</rect>'
    )


# A bar never grows wider than this (drawing units): one day alone is a bar, not a wall.
MAX_BAR_WIDTH = 48


def daily_bars(days, *, chart_id: str = "traffic") -> SafeString:
    """Predictions per day, one bar a day (``days``: :class:`predictor.monitoring.stats.DayPoint`)."""
    title = "Predictions per day"
    if not days:
        return _empty(chart_id, title, "No predictions yet", "chart-traffic")
    top = max(point.predictions for point in days)
    plot = Plot.for_bands(len(days), _count_ticks(top), x_ticks=_band_ticks(len(days)), height=SMALL_HEIGHT)
    busiest = max(days, key=lambda point: point.predictions)
    first, last = days[0].day.isoformat(), days[-1].day.isoformat()
    span = f"on {first}" if len(days) == 1 else f"from {first} to {last}"
    desc = (
        f"Bar chart of predictions per day {span}: {sum(point.predictions for point in days):,} in all, "
        f"at most {busiest.predictions:,} on {busiest.day.isoformat()}."
    )
    parts = _svg_open(chart_id, title, desc, "chart-traffic", height=SMALL_HEIGHT)
    only = len(days) == 1
    parts += _axes(plot, "Day (UTC)", "Predictions", x_format=lambda i: _day(days[int(i)].day, year=only), x_grid=False)
    width = min(plot.band_width() * 0.8, MAX_BAR_WIDTH)
    parts.append('<g class="bars">')
    parts.extend(
        _bar(plot, i, p.predictions, width, "bar", f"{p.day.isoformat()}: {p.predictions:,} predictions")
        for i, p in enumerate(days)
    )
    parts.append("</g>")
    return _svg_close(parts)


def r2_lines(days, *, threshold: float, chart_id: str = "r2") -> SafeString:
    """Cumulative live R² per day, with the promotion threshold as a dashed line."""
    title = "Live R² (cumulative, by prediction day)"
    points = [(i, p.r2_cumulative) for i, p in enumerate(days) if p.r2_cumulative is not None]
    if not points:
        return _empty(chart_id, title, "Not enough observed outcomes yet", "chart-r2")
    values = [v for _, v in points] + [threshold]
    y_ticks = nice_ticks(min(min(values), 0.0), max(max(values), 1.0))
    plot = Plot.for_bands(len(days), y_ticks, x_ticks=_band_ticks(len(days)), height=SMALL_HEIGHT)
    (first_i, first), (last_i, last) = points[0], points[-1]
    desc = (
        f"Line chart of the cumulative live R²: {first:.3f} on {days[first_i].day.isoformat()}, "
        f"{last:.3f} on {days[last_i].day.isoformat()}, against the promotion threshold {threshold:g} "
        f"({'above' if last > threshold else 'not above'} it at the end)."
    )
    parts = _svg_open(chart_id, title, desc, "chart-r2", height=SMALL_HEIGHT)
    only = len(days) == 1
    parts += _axes(
        plot,
        "Prediction day (UTC)",
        "Live R²",
        x_format=lambda i: _day(days[int(i)].day, year=only),
    )
    y_threshold = _num(plot.y(threshold))
    parts.append(
        f'<line class="threshold-line" x1="{_num(plot.left)}" y1="{y_threshold}" x2="{_num(plot.right)}" '
        f'y2="{y_threshold}"><title>Promotion threshold {threshold:g}</title></line>'
    )
    coordinates = " ".join(f"{_num(plot.x(i))},{_num(plot.y(v))}" for i, v in points)
    parts.append(f'<polyline class="r2-line" points="{coordinates}"/>')
    parts.extend(
        f'<circle class="r2-point" cx="{_num(plot.x(i))}" cy="{_num(plot.y(v))}" r="4">'
        f"<title>{days[i].day.isoformat()}: R² {v:.3f}</title></circle>"
        for i, v in points
    )
    return _svg_close(parts)


def bmi_histogram(quality, *, psi: float | None = None, chart_id: str = "bmi") -> SafeString:
    """Share of served BMIs per training decile bin (bars) over the training shares (outlines).

    ``quality`` is a :class:`predictor.monitoring.stats.VersionQuality`; ``psi`` the drift figure to
    name, when there are enough predictions to judge it (``stats.judged_psi``).
    """
    title = "Served BMI over training BMI, per training decile bin"
    if not quality.training_fractions:
        return _empty(chart_id, title, "This version has no training histogram", "chart-bmi")
    served = quality.served_fractions
    training = quality.training_fractions
    edges = quality.edges
    n = len(training)
    top = max([*served, *training, 0.01])
    # Ticks at a few inner bin boundaries (x = i - 0.5 is the boundary below bin i).
    boundaries = [i - 0.5 for i in (1, n // 2, n - 1)] if n > 2 else []
    plot = Plot.for_bands(n, nice_ticks(0, top), x_ticks=boundaries, height=SMALL_HEIGHT)
    widest = max(range(n), key=lambda i: abs(served[i] - training[i]))
    desc = (
        f"Bar chart of the share of served BMIs in each of {n} training decile bins, over "
        f"outlines of the training shares; the largest gap is in bin {widest + 1} "
        f"(served {served[widest]:.1%}, training {training[widest]:.1%})"
        + (f"; PSI {psi:.3f}." if psi is not None else ".")
    )
    parts = _svg_open(chart_id, title, desc, "chart-bmi", height=SMALL_HEIGHT)
    parts += _axes(
        plot,
        "BMI (kg/m²), training decile bins",
        "Share",
        x_format=lambda b: f"{edges[int(b + 0.5)]:.1f}",
        y_format=lambda v: f"{v:.0%}",
        x_grid=False,
    )
    band = plot.band_width()
    parts.append('<g class="bars">')
    for i, (s, t) in enumerate(zip(served, training, strict=True)):
        low = "−∞" if i == 0 else f"{edges[i]:.1f}"
        high = "∞" if i == n - 1 else f"{edges[i + 1]:.1f}"
        parts.append(_bar(plot, i, s, band * 0.7, "bar", f"BMI {low} to {high}: served {s:.1%}, training {t:.1%}"))
        parts.append(_bar(plot, i, t, band * 0.9, "bar-reference"))
    parts.append("</g>")
    return _svg_close(parts)
