"""The MNIST loader reads the verified IDX files and refuses anything else, clearly."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from flaskandmnist.mnist import FILES, Mnist, MnistError, load_mnist, split_validation

TEST_LABELS = FILES["test_labels"].name


@pytest.fixture
def mnist_copy(tmp_path: Path, mnist_dir: Path) -> Path:
    """A folder holding the four real files as links, ready to have one of them spoiled."""
    for spec in FILES.values():
        (tmp_path / f"{spec.name}.gz").symlink_to(mnist_dir / f"{spec.name}.gz")
    return tmp_path


def _replace_test_labels(folder: Path, raw: bytes) -> None:
    target = folder / f"{TEST_LABELS}.gz"
    target.unlink()
    target.write_bytes(gzip.compress(raw))


def _real_test_labels(mnist_dir: Path) -> bytes:
    return gzip.decompress((mnist_dir / f"{TEST_LABELS}.gz").read_bytes())


def test_loads_the_canonical_data_set(mnist: Mnist) -> None:
    assert mnist.train_images.shape == (60000, 28, 28)
    assert mnist.test_images.shape == (10000, 28, 28)
    assert mnist.train_images.dtype == np.uint8
    # The published class counts of MNIST's test set.
    expected = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert np.bincount(mnist.test_labels).tolist() == expected
    assert mnist.checksums["t10k-images-idx3-ubyte"] == "2646ac647ad5339dbf082846283269ea"


def test_accepts_uncompressed_files(mnist_copy: Path, mnist_dir: Path) -> None:
    (mnist_copy / f"{TEST_LABELS}.gz").unlink()
    (mnist_copy / TEST_LABELS).write_bytes(_real_test_labels(mnist_dir))
    assert load_mnist(mnist_copy).test_labels[:5].tolist() == [7, 2, 1, 0, 4]


def test_truncated_file_is_refused(mnist_copy: Path, mnist_dir: Path) -> None:
    _replace_test_labels(mnist_copy, _real_test_labels(mnist_dir)[:-100])
    with pytest.raises(MnistError, match="truncated"):
        load_mnist(mnist_copy)


def test_truncated_gzip_stream_is_refused(mnist_copy: Path, mnist_dir: Path) -> None:
    target = mnist_copy / f"{TEST_LABELS}.gz"
    compressed = (mnist_dir / f"{TEST_LABELS}.gz").read_bytes()
    target.unlink()
    target.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(MnistError, match="cannot read"):
        load_mnist(mnist_copy)


def test_wrong_magic_number_is_refused(mnist_copy: Path, mnist_dir: Path) -> None:
    raw = bytearray(_real_test_labels(mnist_dir))
    raw[3] = 0x03  # an images header where labels belong
    _replace_test_labels(mnist_copy, bytes(raw))
    with pytest.raises(MnistError, match="magic number 0x00000803"):
        load_mnist(mnist_copy)


def test_corrupt_contents_fail_the_checksum(mnist_copy: Path, mnist_dir: Path) -> None:
    raw = bytearray(_real_test_labels(mnist_dir))
    raw[100] = (raw[100] + 1) % 10  # one wrong label, same size and header
    _replace_test_labels(mnist_copy, bytes(raw))
    with pytest.raises(MnistError, match="MD5"):
        load_mnist(mnist_copy)


def test_missing_file_is_named(mnist_copy: Path) -> None:
    (mnist_copy / f"{TEST_LABELS}.gz").unlink()
    with pytest.raises(MnistError, match=rf"{TEST_LABELS}.*not found"):
        load_mnist(mnist_copy)


def test_missing_folder_says_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(MnistError, match=r"does not exist.*MNIST_DIR"):
        load_mnist(tmp_path / "nowhere")


def test_validation_split_partitions_training_data_reproducibly(mnist: Mnist) -> None:
    (train_x, train_y), (val_x, val_y) = split_validation(
        mnist.train_images, mnist.train_labels, 5000, seed=7
    )
    assert len(val_x) == 5000 and len(train_x) == 55000
    # Together the two parts hold exactly the training labels: nothing lost, nothing doubled.
    combined = np.bincount(train_y, minlength=10) + np.bincount(val_y, minlength=10)
    assert combined.tolist() == np.bincount(mnist.train_labels).tolist()
    assert set(np.unique(val_y)) == set(range(10))
    again = split_validation(mnist.train_images, mnist.train_labels, 5000, seed=7)
    assert np.array_equal(again[1][0], val_x)
