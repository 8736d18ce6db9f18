"""The micro-batcher answers each caller exactly as a direct call would, batching callers
that arrive while the function runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from support import wait_until

from flaskandmnist.batching import MicroBatcher
from flaskandmnist.classifier import Classifier
from flaskandmnist.mnist import Mnist, to_float


def tagged(tag: int, count: int) -> np.ndarray:
    """``count`` images whose pixels all hold ``tag * 1000 + index``."""
    values = tag * 1000 + np.arange(count, dtype=np.float32)
    return np.broadcast_to(values[:, None, None], (count, 28, 28)).copy()


def tags(images: np.ndarray) -> list[int]:
    """What :func:`tagged` put into each image: a result that names its input."""
    return [int(image[0, 0]) for image in images]


def refuses_tag_2(images: np.ndarray) -> list[int]:
    """:func:`tags`, but fails on any batch that holds an image tagged 2."""
    if 2000 in tags(images):
        raise ValueError("tag 2")
    return tags(images)


class Gate:
    """A batch function whose first call waits until released, so that the test decides
    which calls queue behind it."""

    def __init__(self, function: Callable[[np.ndarray], Sequence[int]] = tags) -> None:
        self.function = function
        self.entered = threading.Event()
        self.release = threading.Event()
        self.batches: list[int] = []

    def __call__(self, images: np.ndarray) -> Sequence[int]:
        self.batches.append(len(images))
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(30)
        return self.function(images)


def queue_behind_first(batcher: MicroBatcher, gate: Gate, calls: list) -> list:
    """Runs ``calls`` from threads: the first alone, the others while it is held, so that
    they wait together; returns each call's result or exception."""
    pool = ThreadPoolExecutor(len(calls))

    def call(images: np.ndarray) -> object:
        try:
            return list(batcher(images))
        except Exception as error:
            return error

    futures = [pool.submit(call, calls[0])]
    assert gate.entered.wait(30)
    futures += [pool.submit(call, images) for images in calls[1:]]
    wait_until(lambda: len(batcher._waiting) == len(calls) - 1, 30, "all the others wait")
    gate.release.set()
    results = [future.result(30) for future in futures]
    pool.shutdown()
    return results


def test_results_are_those_of_a_direct_call() -> None:
    batcher = MicroBatcher(tags)
    assert list(batcher(tagged(3, 5))) == [3000, 3001, 3002, 3003, 3004]
    assert list(batcher(tagged(4, 1))) == [4000]


def test_a_lone_caller_runs_the_function_in_its_own_thread() -> None:
    callers: list[int] = []

    def function(images: np.ndarray) -> list[int]:
        callers.append(threading.get_ident())
        return tags(images)

    MicroBatcher(function)(tagged(0, 1))
    assert callers == [threading.get_ident()]  # no hand-over to another thread and back


def test_waiting_calls_run_as_one_batch_in_order() -> None:
    gate = Gate()
    batcher = MicroBatcher(gate)
    calls = [tagged(tag, 1 + tag % 3) for tag in range(8)]
    results = queue_behind_first(batcher, gate, calls)
    assert results == [tags(images) for images in calls]
    # The first call alone; the seven that waited meanwhile in one call, not seven.
    assert gate.batches == [1, sum(len(images) for images in calls[1:])]


def test_batches_hold_at_most_max_batch_images_and_never_split_a_call() -> None:
    gate = Gate()
    batcher = MicroBatcher(gate, max_batch=4)
    calls = [tagged(0, 1), tagged(1, 2), tagged(2, 2), tagged(3, 6), tagged(4, 1)]
    results = queue_behind_first(batcher, gate, calls)
    assert results == [tags(images) for images in calls]
    assert gate.batches == [1, 4, 6, 1]


def test_each_of_many_threads_gets_its_own_results() -> None:
    batches: list[int] = []

    def slow_tags(images: np.ndarray) -> list[int]:
        batches.append(len(images))
        time.sleep(0.001)  # lets calls pile up, as a model call does
        return tags(images)

    batcher = MicroBatcher(slow_tags)

    def client(tag: int) -> None:
        for round_ in range(20):
            images = tagged(tag * 100 + round_, 1 + round_ % 4)
            assert list(batcher(images)) == tags(images)

    with ThreadPoolExecutor(16) as pool:
        for future in [pool.submit(client, tag) for tag in range(16)]:
            future.result(60)
    assert sum(batches) == 16 * sum(1 + round_ % 4 for round_ in range(20))
    assert len(batches) < 16 * 20  # some calls were batched


def test_an_error_reaches_only_the_callers_whose_images_fail() -> None:
    gate = Gate(refuses_tag_2)
    batcher = MicroBatcher(gate)
    calls = [tagged(tag, 1) for tag in range(4)]
    results = queue_behind_first(batcher, gate, calls)
    assert results[0] == [0] and results[1] == [1000] and results[3] == [3000]
    assert isinstance(results[2], ValueError) and str(results[2]) == "tag 2"
    with pytest.raises(ValueError, match="tag 2"):
        batcher(tagged(2, 1))
    assert list(batcher(tagged(5, 1))) == [5000]  # not left busy by the error


def test_a_function_giving_the_wrong_number_of_results_is_an_error() -> None:
    batcher = MicroBatcher(lambda images: [0])
    with pytest.raises(ValueError, match="2 items gave 1 results"):
        batcher(tagged(0, 2))


def test_no_thread_is_left_behind() -> None:
    before = threading.active_count()
    batcher = MicroBatcher(tags)
    with ThreadPoolExecutor(4) as pool:
        assert [list(r) for r in pool.map(batcher, [tagged(t, 1) for t in range(8)])] == [
            [t * 1000] for t in range(8)
        ]
    assert threading.active_count() == before  # the callers ran the batches: no thread to stop


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(tags, max_batch=0)


def test_the_model_through_the_batcher_gives_the_model_s_predictions(
    classifier: Classifier, mnist: Mnist
) -> None:
    images = to_float(mnist.test_images[:96])
    direct = classifier.predict(images)
    batcher = MicroBatcher(classifier.predict, max_batch=32)
    with ThreadPoolExecutor(12) as pool:
        batched = [p for part in pool.map(batcher, np.split(images, 24)) for p in part]
    assert [p.digit for p in batched] == [p.digit for p in direct]
    # A batch of other sizes may round differently in the last bits, no more.
    np.testing.assert_allclose(
        [p.probabilities for p in batched], [p.probabilities for p in direct], atol=1e-6
    )
