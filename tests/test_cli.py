"""The command line names digits in files and explains what it cannot do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from flaskandmnist.__main__ import main
from flaskandmnist.classifier import Classifier, ModelNotFoundError, card_path, litert_path
from flaskandmnist.config import DEFAULT_MODEL_PATH
from flaskandmnist.imaging import mnist_to_png
from flaskandmnist.mnist import Mnist, to_float


def test_predict_names_the_digit_in_each_file(
    mnist: Mnist, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = []
    for index in (0, 1, 2):  # MNIST test digits 7, 2, 1, written as black-on-white PNGs
        path = tmp_path / f"digit{index}.png"
        path.write_bytes(mnist_to_png(1.0 - to_float(mnist.test_images[index])))
        paths.append(path)

    assert main(["predict", *map(str, paths)]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[1].split()[0] for line in lines] == ["7", "2", "1"]
    assert all("confidence" in line for line in lines)


def test_predict_reports_unusable_files_and_goes_on(
    mnist: Mnist, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blank = tmp_path / "blank.png"
    blank.write_bytes(mnist_to_png(np.zeros((28, 28), np.float32)))
    good = tmp_path / "seven.png"
    good.write_bytes(mnist_to_png(to_float(mnist.test_images[0])))

    status = main(["predict", str(blank), str(tmp_path / "missing.png"), str(good)])

    out, err = capsys.readouterr()
    assert status == 1
    assert "blank.png: error: No digit found" in err
    assert "missing.png: error:" in err
    assert out.splitlines() == [line for line in out.splitlines() if line.startswith(str(good))]
    assert out.startswith(f"{good}: 7 (confidence ")


def test_missing_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["predict", "--model", str(tmp_path / "none.weights.h5"), "x.png"])
    assert status == 2
    assert "train a model" in capsys.readouterr().err


@pytest.mark.slow  # loads TensorFlow, as only train and export do
def test_export_writes_the_litert_model_of_existing_weights(
    mnist: Mnist, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "old.weights.h5"
    shutil.copy(DEFAULT_MODEL_PATH, weights)
    card = json.loads(card_path(DEFAULT_MODEL_PATH).read_text())
    del card["litert_file"], card["litert_sha256"]  # weights trained before LiteRT files
    card_path(weights).write_text(json.dumps(card))
    with pytest.raises(ModelNotFoundError, match="export"):
        Classifier.load(weights)

    assert main(["export", "--model", str(weights)]) == 0

    assert f"wrote {litert_path(weights)}" in capsys.readouterr().out
    exported = Classifier.load(weights)
    assert exported.predict_one(to_float(mnist.test_images[0])).digit == 7
