"""Training data: the diabetes split, users' CSV files and their errors, fingerprints."""

import io

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

from predictor.ml.data import DataError, fingerprint, load_csv, load_diabetes_bmi, parse_csv


def _csv(rows, header="bmi,progression"):
    return ("\n".join([header, *rows]) + "\n").encode()


GOOD_ROWS = [f"{20 + i * 1.5},{80 + i * 9}" for i in range(20)]


def test_diabetes_split_holds_out_the_last_20_rows_in_kg_per_m2(diabetes):
    assert (diabetes.n_train, diabetes.n_test) == (422, 20)
    raw = load_diabetes(scaled=False)
    np.testing.assert_array_equal(diabetes.X_test, raw.data[-20:, 2])
    np.testing.assert_array_equal(diabetes.y_train, raw.target[:-20])
    assert diabetes.X_train.min() >= 18 and diabetes.X_train.max() <= 43  # kg/m², not the scaled column


def test_diabetes_r2_is_the_same_on_the_scaled_feature(diabetes):
    # The original benchmark used the scaled column; a linear fit is invariant to the scaling.
    scaled = load_diabetes(scaled=True).data[:, 2]
    x_raw, x_scaled, y = diabetes.X_train, scaled[:-20], diabetes.y_train
    slope_raw, intercept_raw = np.polyfit(x_raw, y, 1)
    slope_scaled, intercept_scaled = np.polyfit(x_scaled, y, 1)
    np.testing.assert_allclose(
        slope_raw * diabetes.X_test + intercept_raw, slope_scaled * scaled[-20:] + intercept_scaled, rtol=1e-9
    )


def test_fingerprint_is_stable_and_sensitive_to_order_and_split(diabetes):
    assert diabetes.fingerprint == load_diabetes_bmi().fingerprint
    assert len(diabetes.fingerprint) == 64
    swapped = fingerprint(diabetes.X_train[::-1], diabetes.y_train[::-1], diabetes.X_test, diabetes.y_test)
    assert swapped != diabetes.fingerprint
    moved = fingerprint(
        diabetes.X_train[:-1],
        diabetes.y_train[:-1],
        np.r_[diabetes.X_train[-1], diabetes.X_test],
        np.r_[diabetes.y_train[-1], diabetes.y_test],
    )
    assert moved != diabetes.fingerprint


def test_csv_is_split_at_random_with_a_seed_and_any_row_order():
    data = load_csv(_csv(GOOD_ROWS), test_fraction=0.25, random_state=1)
    assert (data.n_train, data.n_test) == (15, 5)
    again = load_csv(_csv(GOOD_ROWS), test_fraction=0.25, random_state=1)
    assert data.fingerprint == again.fingerprint
    other_seed = load_csv(_csv(GOOD_ROWS), test_fraction=0.25, random_state=2)
    assert other_seed.fingerprint != data.fingerprint
    shuffled = load_csv(_csv(list(reversed(GOOD_ROWS))), test_fraction=0.25, random_state=1)
    assert sorted(shuffled.X_train.tolist() + shuffled.X_test.tolist()) == sorted(
        data.X_train.tolist() + data.X_test.tolist()
    )


def test_csv_accepts_extra_columns_any_column_order_a_bom_and_blank_lines(tmp_path):
    rows = [f"p{i},{80 + i * 9},{20 + i * 1.5}" for i in range(12)]
    path = tmp_path / "mine.csv"
    path.write_bytes(b"\xef\xbb\xbf" + _csv([*rows, ""], header="patient,Progression,BMI"))
    data = load_csv(str(path), test_fraction=0.25)
    assert data.n_train + data.n_test == 12
    assert set(data.X_train.tolist()) <= {20 + i * 1.5 for i in range(12)}


def test_csv_from_a_text_file_object():
    X, y = parse_csv(io.StringIO(_csv(GOOD_ROWS).decode()))
    assert X.shape == y.shape == (20,)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (_csv(GOOD_ROWS, header="bmi,target"), r"Row 1 \(header\): missing column 'progression'"),
        (_csv(GOOD_ROWS, header="weight,progression"), "missing column 'bmi'"),
        (_csv([*GOOD_ROWS[:5], "abc,100", *GOOD_ROWS[5:]]), r"Row 7, column 'bmi': 'abc' is not a number"),
        (_csv([*GOOD_ROWS[:3], "25,", *GOOD_ROWS[3:]]), r"Row 5, column 'progression': value is missing"),
        (_csv([*GOOD_ROWS[:3], "25", *GOOD_ROWS[3:]]), r"Row 5, column 'progression': value is missing"),
        (_csv([*GOOD_ROWS[:2], "nan,100", *GOOD_ROWS[2:]]), r"Row 4, column 'bmi': 'nan' is not a finite number"),
        (_csv([*GOOD_ROWS, "25,inf"]), r"Row 22, column 'progression': 'inf' is not a finite number"),
        (_csv([*GOOD_ROWS[:1], "175,100", *GOOD_ROWS[1:]]), r"Row 3, column 'bmi': 175 kg/m² is outside"),
        (_csv([*GOOD_ROWS, "9.9,100"]), "outside the plausible range 10 to 80"),
        (_csv([*GOOD_ROWS[:2], "2_5,100", *GOOD_ROWS[2:]]), r"Row 4, column 'bmi': '2_5' is not a number"),
        (_csv([*GOOD_ROWS[:2], "\uff12\uff15,100", *GOOD_ROWS[2:]]), "Row 4, column 'bmi': '\uff12\uff15' is not"),
        (_csv(GOOD_ROWS, header="bmi,progression,bmi"), r"Row 1 \(header\): column 'bmi' appears more than once"),
        (_csv([*GOOD_ROWS, "25,1e308"]), r"Row 22, column 'progression': 1e\+308 is outside the plausible range 0 to"),
        (_csv([*GOOD_ROWS[:1], "25,-3", *GOOD_ROWS[1:]]), r"Row 3, column 'progression': -3 is outside"),
        (_csv(GOOD_ROWS[:9]), "9 data rows; at least 10"),
        (_csv(["25,100"] * 12), "same value"),
        (b"bmi,progression\n\xff\xfe,1\n", "not UTF-8"),
    ],
)
def test_bad_csv_gets_one_clear_error_naming_row_and_column(content, message):
    with pytest.raises(DataError, match=message):
        load_csv(content)


def test_an_error_quotes_at_most_the_start_of_a_cell():
    # An unclosed quote makes one cell of the rest of the file; the message must not echo it back.
    content = _csv(["25,100", '"26,' + ",".join(f"{30 + i},{150 + i}" for i in range(200))])
    with pytest.raises(DataError) as caught:
        load_csv(content)
    message = str(caught.value)
    assert "Row 3, column 'bmi'" in message and "is not a number" in message
    assert len(message) < 120
    assert "…" in message


def test_progression_range_can_be_widened():
    _, y = parse_csv(_csv([*GOOD_ROWS, "25,1500"]), progression_range=(0.0, 2000.0))
    assert y[-1] == 1500.0


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="Cannot read"):
        load_csv(str(tmp_path / "nope.csv"))


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5])
def test_test_fraction_must_be_between_0_and_1(fraction):
    with pytest.raises(DataError, match="test_fraction"):
        load_csv(_csv(GOOD_ROWS), test_fraction=fraction)


def test_test_fraction_that_leaves_too_few_training_rows_is_refused():
    with pytest.raises(DataError, match="training rows"):
        load_csv(_csv(GOOD_ROWS[:10]), test_fraction=0.95)


def test_extra_training_rows_keep_the_test_part(diabetes):
    extended = diabetes.with_extra_training_rows([30.0, 31.0], [200.0, 210.0], name="plus-outcomes")
    assert extended.n_train == diabetes.n_train + 2
    np.testing.assert_array_equal(extended.X_test, diabetes.X_test)
    assert extended.fingerprint != diabetes.fingerprint
