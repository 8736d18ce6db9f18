"""The MNIST data set: read the four standard IDX files, verified, from a local folder.

Files may be gzipped (``*.gz``) or raw. Every file is checked for its magic number, its
shape and the canonical MD5 of its uncompressed bytes, so a truncated or swapped file fails
loudly instead of training a subtly wrong model.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: IDX magic numbers: 0x0000 then type code 0x08 (unsigned byte) and the number of dimensions.
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


@dataclass(frozen=True)
class IdxFile:
    """One of the four MNIST files and what it must contain."""

    name: str
    magic: int
    shape: tuple[int, ...]
    md5: str  # of the uncompressed bytes; the canonical digests published with MNIST


FILES: dict[str, IdxFile] = {
    "train_images": IdxFile(
        "train-images-idx3-ubyte", IMAGES_MAGIC, (60000, 28, 28), "6bbc9ace898e44ae57da46a324031adb"
    ),
    "train_labels": IdxFile(
        "train-labels-idx1-ubyte", LABELS_MAGIC, (60000,), "a25bea736e30d166cdddb491f175f624"
    ),
    "test_images": IdxFile(
        "t10k-images-idx3-ubyte", IMAGES_MAGIC, (10000, 28, 28), "2646ac647ad5339dbf082846283269ea"
    ),
    "test_labels": IdxFile(
        "t10k-labels-idx1-ubyte", LABELS_MAGIC, (10000,), "27ae3e4e09519cfbb04c329615203637"
    ),
}

#: Public mirror used only when downloading is explicitly allowed (never in tests or CI).
MIRROR_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"


class MnistError(RuntimeError):
    """The MNIST files are missing, unreadable or not the canonical data."""


@dataclass(frozen=True)
class Mnist:
    """The four arrays of MNIST plus the MD5 digests they were verified against."""

    train_images: np.ndarray  # (60000, 28, 28) uint8
    train_labels: np.ndarray  # (60000,) uint8
    test_images: np.ndarray  # (10000, 28, 28) uint8
    test_labels: np.ndarray  # (10000,) uint8
    checksums: dict[str, str]  # file name -> MD5 of the uncompressed bytes


def _find(folder: Path, spec: IdxFile) -> Path:
    for candidate in (folder / f"{spec.name}.gz", folder / spec.name):
        if candidate.is_file():
            return candidate
    raise MnistError(
        f"MNIST file {spec.name}(.gz) not found in {folder}. Set MNIST_DIR to the folder "
        "holding the four IDX files, or MNIST_DOWNLOAD=1 to fetch them."
    )


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise MnistError(f"cannot read {path}: {exc}") from exc


def parse_idx(raw: bytes, spec: IdxFile, source: str = "<bytes>") -> np.ndarray:
    """Check an IDX file's header and size and return its contents as a uint8 array."""
    ndim = len(spec.shape)
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise MnistError(f"{source} is truncated: {len(raw)} bytes, not even an IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if magic != spec.magic:
        raise MnistError(
            f"{source} has magic number 0x{magic:08x}, expected 0x{spec.magic:08x} "
            f"for {spec.name}: wrong or corrupt file"
        )
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if dims != spec.shape:
        raise MnistError(f"{source} has shape {dims}, expected {spec.shape}")
    expected = header_size + int(np.prod(dims))
    if len(raw) != expected:
        raise MnistError(f"{source} is truncated or padded: {len(raw)} bytes, expected {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(dims)


def _load_file(folder: Path, spec: IdxFile) -> tuple[np.ndarray, str]:
    path = _find(folder, spec)
    raw = _read_bytes(path)
    array = parse_idx(raw, spec, str(path))
    digest = hashlib.md5(raw).hexdigest()
    if digest != spec.md5:
        raise MnistError(f"{path} has MD5 {digest}, expected {spec.md5}: the file is corrupt")
    return array, digest


def download(folder: Path, base_url: str = MIRROR_URL) -> None:
    """Fetch the four gzipped files into ``folder``; they are verified when loaded."""
    folder.mkdir(parents=True, exist_ok=True)
    for spec in FILES.values():
        target = folder / f"{spec.name}.gz"
        if target.exists():
            continue
        # Write to a temporary name first so an interrupted download never looks complete.
        with tempfile.NamedTemporaryFile(dir=folder, delete=False) as tmp:
            try:
                with urllib.request.urlopen(f"{base_url}{spec.name}.gz", timeout=60) as resp:
                    shutil.copyfileobj(resp, tmp)
            except OSError as exc:
                Path(tmp.name).unlink(missing_ok=True)
                raise MnistError(f"downloading {spec.name}.gz failed: {exc}") from exc
        Path(tmp.name).rename(target)


def load_mnist(folder: Path | str, allow_download: bool = False) -> Mnist:
    """Load and verify all of MNIST from ``folder``.

    Raises :class:`MnistError` with a message naming the file and the problem.
    """
    folder = Path(folder)
    if allow_download:
        download(folder)
    elif not folder.is_dir():
        raise MnistError(
            f"MNIST folder {folder} does not exist. Set MNIST_DIR to the folder holding "
            "the four IDX files, or MNIST_DOWNLOAD=1 to fetch them."
        )
    arrays: dict[str, np.ndarray] = {}
    checksums: dict[str, str] = {}
    for key, spec in FILES.items():
        arrays[key], checksums[spec.name] = _load_file(folder, spec)
    return Mnist(**arrays, checksums=checksums)


def split_validation(
    images: np.ndarray, labels: np.ndarray, size: int, seed: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Hold out ``size`` training examples (stratified-by-chance, seeded) for validation.

    The test set is never used for training or tuning; this split is what tuning sees.
    """
    order = np.random.default_rng(seed).permutation(len(images))
    val, train = order[:size], order[size:]
    return (images[train], labels[train]), (images[val], labels[val])


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 MNIST pixels -> float32 in [0, 1], the model's input format."""
    return images.astype(np.float32) / 255.0
