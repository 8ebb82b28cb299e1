"""The batch pipeline of a document step: read ahead, plan, write, in order.

Reading and planning batch k+1 overlaps with writing batch k: the next batch is
fetched (a round trip, BSON decoding) on a read-ahead thread while this one is
planned on the caller's thread, and planned batches are written strictly in order
on one writer thread (pymongo releases the GIL while it waits on the server), so a
step runs close to the database's own write speed. While a pipeline runs, the
cycle collector runs less often (see `_rare_cycle_collection`).
"""

from __future__ import annotations

import gc
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Job = TypeVar("Job")


class BatchPipeline(Generic[Job]):
    """Used as `with BatchPipeline(name, write) as pipeline:` then, `for batch in pipeline.batches(source)`,
    `pipeline.submit(plan(batch))`.

    `write(job)` runs on the writer thread, one job at a time in submission order; the
    first error it raises stops the writes and is raised to the caller (at the next
    `submit`, or when the pipeline closes)."""

    def __init__(self, name: str, write: Callable[[Job], None]):
        self.name = name
        self._write = write
        self._jobs: queue.Queue[Job | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._writer = threading.Thread(target=self._run_writes, name=f"writer-{name}", daemon=True)
        self._stack = ExitStack()
        self._helpers = ThreadPoolExecutor(1, thread_name_prefix=f"alongside-{name}")

    def __enter__(self) -> BatchPipeline[Job]:
        self._stack.enter_context(_rare_cycle_collection())
        self._writer.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self._jobs.put(None)
        self._writer.join()
        self._helpers.shutdown(wait=True, cancel_futures=True)
        self._stack.close()
        if exc is None:
            self._raise()

    def batches(self, source: Generator[T, None, None]) -> Iterator[T]:
        """The same batches, each fetched while the one before is planned."""
        try:
            with ThreadPoolExecutor(1, thread_name_prefix=f"read-ahead-{self.name}") as reader:
                upcoming = reader.submit(next, source, None)
                while (batch := upcoming.result()) is not None:
                    upcoming = reader.submit(next, source, None)
                    yield batch
        finally:
            source.close()  # after the reader stopped: the cursor is closed by the thread that owns it now

    def submit(self, job: Job) -> None:
        """Queue a planned batch for writing (waits while the one before is still queued)."""
        self._raise()
        self._jobs.put(job)
        self._raise()

    def alongside(self, function: Callable[..., T], *args: Any) -> Future[T]:
        """Run `function` on a helper thread while batches flow (the progress count)."""
        return self._helpers.submit(function, *args)

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run_writes(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self._error is None:
                try:
                    self._write(job)
                except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
                    self._error = error


_GC_THRESHOLD = 50_000  # container allocations between young collections (CPython's default: 700)
_gc_lock = threading.Lock()
_gc_users = 0
_gc_default: tuple[int, int, int] = gc.get_threshold()


@contextmanager
def _rare_cycle_collection() -> Iterator[None]:
    """Run the cycle collector less often while batches are planned.

    A batch allocates ~100k small objects that live until it is written, so with the
    default threshold the collector runs hundreds of times per batch, each time walking
    objects that are freed by reference counting anyway: a quarter of a sync's CPU
    (measured). Entries hold no cycles, so memory stays what the batch needs. Restored
    when the last pipeline running in this process ends.
    """
    global _gc_users, _gc_default
    with _gc_lock:
        if _gc_users == 0:
            _gc_default = gc.get_threshold()
            gc.set_threshold(max(_gc_default[0], _GC_THRESHOLD), *_gc_default[1:])
        _gc_users += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users -= 1
            if _gc_users == 0:
                gc.set_threshold(*_gc_default)
