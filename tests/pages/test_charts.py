"""Server-side SVG charts: coordinates land where the scales say, text is escaped, markup is valid."""

import itertools
import math
import xml.etree.ElementTree as ET

import pytest

from predictor.web import charts

SVG = "{http://www.w3.org/2000/svg}"
SAMPLE = [[20.0, 100.0], [25.0, 150.0], [30.0, 210.0], [35.0, 240.0]]


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))  # noqa: S314 - markup we generated ourselves


def coords(element: ET.Element, *names: str) -> tuple[float, ...]:
    return tuple(float(element.get(name)) for name in names)


def test_linear_scale_maps_ends_and_midpoint_onto_a_reversed_range():
    scale = charts.LinearScale(domain=(10.0, 50.0), range=(300.0, 100.0))
    assert scale(10.0) == 300.0
    assert scale(50.0) == 100.0
    assert scale(30.0) == 200.0


def test_linear_scale_of_a_single_value_is_centred():
    assert charts.LinearScale(domain=(5.0, 5.0), range=(0.0, 100.0))(5.0) == 50.0


@pytest.mark.parametrize(("low", "high"), [(18.2, 42.1), (25.0, 346.0), (3800.0, 29000.0), (0.001, 0.0042), (-5, 5)])
def test_nice_ticks_cover_the_range_in_round_steps(low, high):
    ticks = charts.nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1
    step = steps.pop()
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in (1.0, 2.0, 5.0)


def test_nice_ticks_refuse_non_finite_bounds():
    with pytest.raises(ValueError, match="finite"):
        charts.nice_ticks(0.0, float("nan"))


def test_fit_chart_is_a_labelled_svg_image():
    root = parse(charts.fit_chart(sample=SAMPLE, slope=10.0, intercept=-100.0, chart_id="c1", title="Fit"))
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "c1-title c1-desc"
    assert root.find(f"{SVG}title").get("id") == "c1-title"
    assert root.find(f"{SVG}title").text == "Fit"
    desc = root.find(f"{SVG}desc")
    assert desc.get("id") == "c1-desc"
    assert "4 training patients" in desc.text
    assert "progression = 10.00 × BMI − 100.0" in desc.text


def test_fit_chart_places_each_training_point_at_its_scaled_coordinates():
    plot = charts.fit_plot(sample=SAMPLE, slope=10.0, intercept=-100.0)
    root = parse(charts.fit_chart(sample=SAMPLE, slope=10.0, intercept=-100.0))
    circles = root.findall(f"{SVG}g[@class='points']/{SVG}circle")
    assert len(circles) == len(SAMPLE)
    for circle, (bmi, progression) in zip(circles, SAMPLE, strict=True):
        cx, cy = coords(circle, "cx", "cy")
        assert cx == pytest.approx(plot.x(bmi), abs=0.01)
        assert cy == pytest.approx(plot.y(progression), abs=0.01)
        assert plot.left <= cx <= plot.right
        assert plot.top <= cy <= plot.bottom
    xs = [coords(c, "cx")[0] for c in circles]
    ys = [coords(c, "cy")[0] for c in circles]
    # More BMI is further right; more progression is higher up (smaller y in SVG).
    assert xs == sorted(xs)
    assert ys == sorted(ys, reverse=True)


def test_fit_chart_draws_the_patient_on_the_fitted_line():
    patient = (28.0, 10.0 * 28.0 - 100.0)
    plot = charts.fit_plot(sample=SAMPLE, slope=10.0, intercept=-100.0, patient=patient)
    root = parse(charts.fit_chart(sample=SAMPLE, slope=10.0, intercept=-100.0, patient=patient))
    point = root.find(f".//{SVG}circle[@class='patient-point']")
    px, py = coords(point, "cx", "cy")
    assert px == pytest.approx(plot.x(28.0), abs=0.01)
    assert py == pytest.approx(plot.y(180.0), abs=0.01)
    line = root.find(f"{SVG}line[@class='fit-line']")
    x1, y1, x2, y2 = coords(line, "x1", "y1", "x2", "y2")
    # The patient's point is collinear with the fitted line's end points.
    assert (py - y1) * (x2 - x1) == pytest.approx((y2 - y1) * (px - x1), rel=1e-4)
    label = root.find(f".//{SVG}text[@class='patient-label']")
    assert label.text == "180.0"


def test_fit_chart_domain_includes_a_patient_outside_the_training_data():
    patient = (60.0, 500.0)
    plot = charts.fit_plot(sample=SAMPLE, slope=10.0, intercept=-100.0, patient=patient)
    assert plot.x.domain[1] >= 60.0
    assert plot.y.domain[1] >= 500.0


def test_fit_chart_skips_non_finite_sample_points():
    sample = [*SAMPLE, [float("nan"), 1.0], [30.0, float("inf")]]
    root = parse(charts.fit_chart(sample=sample, slope=10.0, intercept=-100.0))
    assert len(root.findall(f"{SVG}g[@class='points']/{SVG}circle")) == len(SAMPLE)


def test_chart_text_is_escaped():
    hostile = '<script>alert("x")</script> & "quotes"'
    markup = str(charts.fit_chart(sample=SAMPLE, slope=1.0, intercept=0.0, title=hostile, chart_id='a"b'))
    assert "<script>" not in markup
    assert "&lt;script&gt;" in markup
    root = parse(markup)  # still well-formed
    assert root.find(f"{SVG}title").text == hostile
    assert root.get("id") == 'a"b'


def test_loss_chart_spreads_a_downsampled_curve_over_all_epochs():
    losses = [900.0, 400.0, 250.0, 200.0]
    root = parse(charts.loss_chart(losses=losses, n_epochs=31))
    points = [tuple(map(float, p.split(","))) for p in root.find(f"{SVG}polyline").get("points").split()]
    assert len(points) == 4
    # The x axis is in epochs: the first point at epoch 1, the last at epoch 31, evenly spaced.
    x_scale_start, x_scale_end = points[0][0], points[-1][0]
    gaps = [round(b[0] - a[0], 1) for a, b in itertools.pairwise(points)]
    assert len(set(gaps)) == 1
    assert x_scale_end > x_scale_start
    # A falling loss is a line going down the chart (increasing SVG y).
    assert [y for _, y in points] == sorted(y for _, y in points)
    assert "31 epochs" in root.find(f"{SVG}desc").text


def test_loss_chart_without_a_curve_says_so():
    root = parse(charts.loss_chart(losses=[], n_epochs=0))
    assert root.find(f"{SVG}polyline") is None
    assert "No loss curve" in root.find(f"{SVG}desc").text


@pytest.mark.parametrize("patient", [None, (27.5, 175.0), (70.0, 600.0)])
def test_fit_chart_tick_labels_are_the_axis_ends_and_stay_inside_the_plot(patient):
    plot = charts.fit_plot(sample=SAMPLE, slope=10.0, intercept=-100.0, patient=patient)
    root = parse(charts.fit_chart(sample=SAMPLE, slope=10.0, intercept=-100.0, patient=patient))
    x_labels = root.findall(f".//{SVG}text[@class='tick tick-x']")
    y_labels = root.findall(f".//{SVG}text[@class='tick tick-y']")
    assert [float(t.text.replace(",", "")) for t in x_labels] == list(plot.x_ticks)
    assert [float(t.text.replace(",", "")) for t in y_labels] == list(plot.y_ticks)
    assert plot.x.domain == (plot.x_ticks[0], plot.x_ticks[-1])
    for label in x_labels:
        assert plot.left <= float(label.get("x")) <= plot.right
    for label in y_labels:
        assert plot.top <= float(label.get("y")) - 4 <= plot.bottom


def test_loss_chart_of_one_epoch_draws_its_point_on_whole_epoch_ticks():
    svg = str(charts.loss_chart(losses=[1234.5], n_epochs=1))
    assert '<circle class="loss-point"' in svg
    assert "over 1 epoch:" in svg
    assert ">1.2<" not in svg and ">1.5<" not in svg


def test_fit_chart_shades_the_interval_band_around_the_line():
    sample = [[20.0, 100.0], [30.0, 200.0], [40.0, 300.0]]
    markup = charts.fit_chart(sample=sample, slope=10.0, intercept=-100.0, band=lambda x: 50.0, band_level=0.9)
    svg = parse(markup)
    plot = charts.fit_plot(sample=sample, slope=10.0, intercept=-100.0)
    [band] = [e for e in svg.iter() if e.get("class") == "fit-band"]
    points = [tuple(map(float, p.split(","))) for p in band.get("points").split()]

    assert len(points) == 50  # 25 along the upper edge, 25 back along the lower
    x_lo, x_hi = plot.x.domain
    # Upper edge starts at the left end, line + 50; the lower edge ends there, line − 50.
    assert points[0] == pytest.approx((plot.x(x_lo), plot.y(10 * x_lo - 100 + 50)), abs=0.01)
    assert points[24] == pytest.approx((plot.x(x_hi), plot.y(10 * x_hi - 100 + 50)), abs=0.01)
    assert points[-1] == pytest.approx((plot.x(x_lo), plot.y(10 * x_lo - 100 - 50)), abs=0.01)
    assert "Shaded: the 90% prediction interval around the line." in svg.find(f"{SVG}desc").text
    # Drawn behind the training points, inside the plot area.
    order = [e.get("class") for e in svg if e.get("class") in ("fit-band", "points")]
    assert order == ["fit-band", "points"] and band.get("clip-path") == "url(#fit-chart-clip)"


def test_fit_chart_without_a_band_draws_none():
    assert "fit-band" not in charts.fit_chart(sample=[[20.0, 100.0]], slope=1.0, intercept=0.0)


def _days(*counts, r2=None):
    from datetime import date, timedelta

    from predictor.monitoring.stats import DayPoint

    start = date(2026, 12, 1)
    return [
        DayPoint(day=start + timedelta(days=i), predictions=c, outcomes=0, r2=None, r2_cumulative=r2)
        for i, c in enumerate(counts)
    ]


def axis_titles(root: ET.Element) -> list[str]:
    return [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "axis-title"]


@pytest.mark.parametrize(
    ("markup", "titles"),
    [
        (lambda: charts.daily_bars(_days(3, 5)), ["Day (UTC)", "Predictions"]),
        (lambda: charts.r2_lines(_days(3, 5, r2=0.4), threshold=0.3), ["Prediction day (UTC)", "Live R²"]),
        (
            lambda: charts.fit_chart(sample=SAMPLE, slope=1.0, intercept=0.0),
            ["BMI (kg/m²)", "Progression after 1 year"],
        ),
        (lambda: charts.loss_chart(losses=[3.0, 2.0]), ["Epoch", "Training MSE"]),
    ],
)
def test_every_chart_has_both_axis_titles_and_the_same_width(markup, titles):
    root = parse(markup())
    assert axis_titles(root) == titles
    assert root.get("viewBox").split()[2] == str(charts.WIDTH)


def test_one_day_of_traffic_is_a_bar_not_a_wall_and_its_date_is_labelled_once():
    root = parse(charts.daily_bars(_days(7)))
    (bar,) = root.iter(f"{SVG}rect")
    assert float(bar.get("width")) <= charts.MAX_BAR_WIDTH
    ticks = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "tick tick-x"]
    assert ticks == ["1 Dec 2026"]
    assert "on 2026-12-01" in root.find(f"{SVG}desc").text


def test_traffic_counts_are_whole_numbers_on_the_axis():
    root = parse(charts.daily_bars(_days(1, 2)))
    ticks = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "tick tick-y"]
    assert ticks == ["0", "1", "2"]


def test_one_day_of_live_r2_is_drawn_inside_the_plot_not_on_its_axis():
    root = parse(charts.r2_lines(_days(4, r2=0.5), threshold=0.3))
    (point,) = [c for c in root.iter(f"{SVG}circle") if c.get("class") == "r2-point"]
    assert float(point.get("cx")) == pytest.approx((charts.MARGIN_LEFT + charts.WIDTH - charts.MARGIN_RIGHT) / 2)


@pytest.mark.parametrize(
    ("markup", "message"),
    [
        (lambda: charts.daily_bars([]), "No predictions yet"),
        (lambda: charts.r2_lines(_days(4), threshold=0.3), "Not enough observed outcomes yet"),
    ],
)
def test_a_chart_without_data_says_so_in_words_and_to_a_screen_reader(markup, message):
    root = parse(markup())
    assert root.get("role") == "img"
    assert root.find(f"{SVG}desc").text == message
    assert "chart-no-data" in root.get("class")


@pytest.mark.parametrize(("slope", "bmi"), [(10.0, 22.0), (10.0, 34.0), (-10.0, 22.0), (-10.0, 34.0)])
def test_the_patient_label_sits_on_the_side_the_fitted_line_leaves_free(slope, bmi):
    intercept = 400.0 if slope < 0 else -100.0
    patient = (bmi, slope * bmi + intercept)
    root = parse(charts.fit_chart(sample=SAMPLE, slope=slope, intercept=intercept, patient=patient))
    point = root.find(f".//{SVG}circle[@class='patient-point']")
    label = root.find(f".//{SVG}text[@class='patient-label']")
    px, py = coords(point, "cx", "cy")
    lx, ly = coords(label, "x", "y")
    right_of_point = label.get("text-anchor") == "start"
    above_point = ly < py
    # A rising line leaves the upper left and the lower right free; a falling one the others.
    assert (above_point != right_of_point) if slope > 0 else (above_point == right_of_point)
    assert (lx > px) == right_of_point
