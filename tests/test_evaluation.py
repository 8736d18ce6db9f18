"""Evaluation: the metrics are computed right, and the shipped model clears the bar."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from flaskandmnist.__main__ import main
from flaskandmnist.classifier import card_path, litert_path
from flaskandmnist.config import DEFAULT_MODEL_PATH
from flaskandmnist.evaluation import evaluate_predictions, format_report, refusal_table


def test_metrics_from_known_predictions() -> None:
    labels = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2, 9])
    predicted = np.array([0, 1, 1, 1, 1, 2, 2, 2, 7, 9])
    result = evaluate_predictions(labels, predicted)
    assert result.accuracy == pytest.approx(0.8)
    assert result.errors == 2
    assert result.per_class[0] == pytest.approx(0.5)
    assert result.per_class[2] == pytest.approx(0.75)
    assert result.confusion[2, 7] == 1 and result.confusion[0, 1] == 1
    assert result.confusion.sum() == len(labels)


def test_report_is_a_readable_table() -> None:
    labels = np.arange(10).repeat(3)
    report = format_report(evaluate_predictions(labels, labels), "perfect")
    assert "accuracy: 100.00% (30/30, 0 errors)" in report
    assert len([line for line in report.splitlines() if re.match(r"\s+\d \|", line)]) == 10


def test_the_refusal_table_shows_what_each_threshold_costs() -> None:
    def leaning(digit: int, not_a_digit: float) -> list[float]:
        row = [0.0] * 11
        row[digit], row[10] = 1.0 - not_a_digit, not_a_digit
        return row

    # A 3 that leans 0.65 to "not a digit", a clear 5, and two dots at 0.75 and 0.95.
    probabilities = np.array(
        [leaning(3, 0.65), leaning(5, 0.0), leaning(0, 0.75), leaning(0, 0.95)]
    )
    labels = np.array([3, 5, 10, 10])
    rows = {
        line.split()[0]: line.split()[1:]
        for line in refusal_table(probabilities, labels).splitlines()[1:]
    }
    assert rows["0.6"] == ["50.00%", "50.00%", "100.00%"]  # the 3 refused, both dots
    assert rows["0.7"] == ["100.00%", "0.00%", "100.00%"]
    assert rows["0.8"] == ["100.00%", "0.00%", "50.00%"]  # one dot answered as a digit


@pytest.mark.slow
def test_shipped_model_reaches_the_bar_on_all_10k_test_images(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`python -m flaskandmnist evaluate`: of the 10,000 MNIST test images at most 0.5 %
    are read as a wrong digit, and at most 0.3 % answered "not a digit"."""
    assert main(["evaluate"]) == 0
    printed = capsys.readouterr().out
    print(printed)
    accuracy = float(re.search(r"^accuracy: ([\d.]+)%", printed, re.MULTILINE).group(1))
    refused = float(re.search(r"^answered not a digit: ([\d.]+)%", printed, re.M).group(1))
    assert "(rows: true digit, columns: predicted digit; x: not a digit)" in printed
    assert refused <= 0.3
    assert accuracy + refused >= 99.5


@pytest.mark.slow
def test_the_shipped_card_holds_what_update_card_measures(tmp_path: Path) -> None:
    """The card's figures are those of the served model under today's rule for reading
    answers: `evaluate --update-card` on a copy with a stale card writes the shipped card's."""
    weights = tmp_path / "copy.weights.h5"
    shutil.copy(litert_path(DEFAULT_MODEL_PATH), litert_path(weights))
    shipped = json.loads(card_path(DEFAULT_MODEL_PATH).read_text())
    stale = shipped | {"test_refused_through_pipeline": 0.5, "refuse_probability": 0.5}
    del stale["held_out_negatives_refused"]
    card_path(weights).write_text(json.dumps(stale))

    assert main(["evaluate", "--model", str(weights), "--update-card"]) == 0

    assert json.loads(card_path(weights).read_text()) == shipped
