"""Shared fixtures: MNIST (from MNIST_DIR, never downloaded in tests) and the shipped model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flaskandmnist.config import DEFAULT_MODEL_PATH
from flaskandmnist.mnist import Mnist, load_mnist
from flaskandmnist.model import Classifier

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The local MNIST folder: MNIST_DIR, else the shared copy beside the checkout."""
    folder = Path(os.environ.get("MNIST_DIR") or REPO_ROOT.parent / "shared" / "data" / "mnist")
    if not folder.is_dir():
        pytest.fail(f"MNIST folder {folder} not found: set MNIST_DIR to the local copy")
    return folder


@pytest.fixture(scope="session")
def mnist(mnist_dir: Path) -> Mnist:
    """All of MNIST, verified, loaded once per test session."""
    return load_mnist(mnist_dir)


@pytest.fixture(scope="session")
def classifier() -> Classifier:
    """The trained model shipped in the repository, loaded once."""
    return Classifier.load(DEFAULT_MODEL_PATH)
