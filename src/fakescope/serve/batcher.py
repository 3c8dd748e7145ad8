"""Micro-batching: one model thread scores, in one forward pass, the images that arrived
together, so throughput grows with load while a lone request barely waits.

Requests on the event loop ``await`` :meth:`MicroBatcher.score`; the images (prepared model
inputs, one array each) go into a short
queue; the model thread takes the first waiting image, then up to ``max_batch - 1`` more
that arrive within ``max_wait`` of it, scores them together and resolves each request's
future. It only waits when more images are on their way: a request announces its images
with :meth:`MicroBatcher.expect` while it is still being decoded, so a lone request is
scored at once instead of paying ``max_wait`` for company that will not come. Work that
needs the model to itself (Grad-CAM registers hooks on it) runs on the same thread
between batches through :meth:`MicroBatcher.run_exclusive`.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

T = TypeVar("T")
R = TypeVar("R")
ScoreFn = Callable[[list[np.ndarray]], Sequence[R]]
"""Prepared inputs of one batch -> one result per input, in order."""


class Overloaded(Exception):
    """The queue is full: the server is busier than it can serve."""


@dataclass
class _Item:
    array: np.ndarray
    future: Future


@dataclass
class Expected:
    """Images a request announced (:meth:`MicroBatcher.expect`) and has not submitted yet."""

    left: int


@dataclass
class _Job:
    fn: Callable[[], Any]
    future: Future


_STOP = object()


class MicroBatcher(Generic[R]):
    """Scores prepared images (uint8 arrays of one shape, e.g. (3, S, S) or (K, 3, S, S)
    crops) on one thread, in batches of up to ``max_batch``; each image's result is what
    ``score_batch`` returns for it."""

    def __init__(
        self,
        score_batch: ScoreFn[R],
        *,
        max_batch: int = 32,
        max_wait: float = 0.002,
        queue_size: int = 256,
        warmup: np.ndarray | None = None,
    ) -> None:
        self._score_batch = score_batch
        self.max_batch = max(1, int(max_batch))
        self.max_wait = max(0.0, float(max_wait))
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._warmup = warmup
        self._thread: threading.Thread | None = None
        self._held: Any = None  # a job or stop signal met while filling a batch
        self.ready = threading.Event()
        self._expected = 0  # images announced by requests and not in the queue yet
        self._expected_lock = threading.Lock()
        self.batches = 0
        self.images = 0

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="fakescope-model", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        self._queue.put(_STOP)  # blocking put: the stop signal must not be lost
        self._thread.join(timeout)
        self._thread = None
        self.ready.clear()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- submitting ------------------------------------------------------------------------
    @contextlib.contextmanager
    def expect(self, n: int) -> Iterator[Expected]:
        """Announce ``n`` images that will reach :meth:`score` soon (while they are decoded),
        so the model thread waits for them to fill a batch. Pass the yielded handle to
        :meth:`score`; whatever never arrives (a bad upload) is withdrawn on exit."""
        handle = Expected(n)
        self._adjust_expected(n)
        try:
            yield handle
        finally:
            self._adjust_expected(-handle.left)

    @property
    def expected(self) -> int:
        """Images announced by requests that are not in the queue yet."""
        return self._expected

    def _adjust_expected(self, delta: int) -> None:
        with self._expected_lock:
            self._expected = max(0, self._expected + delta)

    async def score(self, arrays: list[np.ndarray], expected: Expected | None = None) -> list[R]:
        """The result of each image; raises :class:`Overloaded` when the queue is full."""
        if expected is not None:  # they arrive: no longer on their way
            arrived = min(len(arrays), expected.left)
            expected.left -= arrived
            self._adjust_expected(-arrived)
        futures = [self._put(_Item(array, Future())) for array in arrays]
        return list(await asyncio.gather(*(asyncio.wrap_future(f) for f in futures)))

    async def run_exclusive(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the model thread, between batches, and return its result."""
        return await asyncio.wrap_future(self._put(_Job(fn, Future())))

    def _put(self, entry: _Item | _Job) -> Future:
        if not self.running:
            raise Overloaded("the model thread is not running")
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            raise Overloaded(f"{self._queue.maxsize} images are already waiting") from None
        return entry.future

    # -- the model thread ------------------------------------------------------------------
    def _run(self) -> None:
        if self._warmup is not None:
            with contextlib.suppress(Exception):  # a failing model shows on first request
                self._score_batch([self._warmup])
        self.ready.set()
        while True:
            entry = self._next()
            if entry is _STOP:
                self._drain()
                return
            if isinstance(entry, _Job):
                self._run_job(entry)
                continue
            self._run_batch(self._fill([entry]))

    def _next(self) -> Any:
        if self._held is not None:
            entry, self._held = self._held, None
            return entry
        return self._queue.get()

    def _fill(self, batch: list[_Item]) -> list[_Item]:
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            if self._expected <= 0 and self._queue.empty():
                break  # nothing waiting and nothing on its way: score now
            remaining = deadline - time.monotonic()
            try:
                entry = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if not isinstance(entry, _Item):
                self._held = entry  # a job or stop runs after this batch
                break
            batch.append(entry)
        return batch

    def _run_batch(self, batch: list[_Item]) -> None:
        live = [item for item in batch if item.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            results = list(self._score_batch([item.array for item in live]))
            if len(results) != len(live):
                raise RuntimeError(f"{len(results)} results for a batch of {len(live)} images")
        except BaseException as exc:  # the requests see the error; the thread lives on
            for item in live:
                item.future.set_exception(exc)
            return
        self.batches += 1
        self.images += len(live)
        for item, result in zip(live, results, strict=True):
            item.future.set_result(result)

    @staticmethod
    def _run_job(job: _Job) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        try:
            job.future.set_result(job.fn())
        except BaseException as exc:
            job.future.set_exception(exc)

    def _drain(self) -> None:
        """Refuse whatever is still queued at shutdown, so no request waits forever."""
        while True:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(entry, _Item | _Job) and entry.future.set_running_or_notify_cancel():
                entry.future.set_exception(Overloaded("the server is shutting down"))
