"""The command line names digits in files and explains what it cannot do."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import REPO_ROOT

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


def without_tensorflow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command line in a Python where TensorFlow and Keras cannot be imported, as in a
    venv of the serving requirements only."""
    code = (
        "import sys; sys.modules['tensorflow'] = sys.modules['keras'] = None; "
        "from flaskandmnist.__main__ import main; sys.exit(main(sys.argv[1:]))"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_predict_needs_no_tensorflow(digit_pngs: dict[int, bytes], tmp_path: Path) -> None:
    (tmp_path / "seven.png").write_bytes(digit_pngs[7])
    result = without_tensorflow("predict", "seven.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("seven.png: 7 (confidence ")


@pytest.mark.parametrize("command", ["train", "export"])
def test_training_commands_say_when_tensorflow_is_missing(command: str, tmp_path: Path) -> None:
    result = without_tensorflow(command, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {command} needs TensorFlow, which serving does not install: "
        "install requirements-train.txt (scripts/run.sh does)"
    )
