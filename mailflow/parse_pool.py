"""Parsing on the other cores while the intake works the database (DESIGN §6).

`parse_message` is pure, so a batch can be parsed in worker processes. Results come back in
order and lazily: the intake acts on message i while the workers parse the next ones, and at
most a small window of parsed messages waits in memory. Small batches (a message from IDLE)
and big messages are parsed in this process: the first would only wait for the pipe, the
second would be copied through it (a 10 MB attachment must not multiply in memory).

Workers are started by a fork server (not by forking the daemon, which runs threads) on first
use, and stay for the life of the pool. A worker that dies or hangs gives its chunk back to this
process; nothing is lost, the pool is started again for the next batch (after three failures
everything is parsed here). As with any multiprocessing start method but fork, a script that
runs the intake must guard its top level with `if __name__ == "__main__":` (the CLI does).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor

from mailflow.message import ParsedMessage
from mailflow.parsing import parse_message

log = logging.getLogger(__name__)

MIN_BATCH = 16  # fewer messages than this are parsed here: the workers would not pay off
CHUNK = 4  # messages per task: amortises the pipe round trip, keeps results flowing
MAX_SHIPPED_BYTES = 1024 * 1024  # bigger messages are parsed here, not copied to a worker and back
RESULT_TIMEOUT = 300.0  # seconds a chunk may take in a worker before the worker counts as hung


def default_workers() -> int:
    """Parse processes when the settings say `auto`: one per core, at most 2; none on one core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cores < 2 else min(cores, 2)


# Something a worker also works out from each parsed message (a pure, module-level function:
# it travels to the worker by name); None where the message was parsed in this process.
Enrich = Callable[[ParsedMessage], object]
Parsed = tuple[ParsedMessage, object]


def _parse_chunk(raws: list[bytes], enrich: Enrich | None) -> list[Parsed]:
    out: list[Parsed] = []
    for raw in raws:
        msg = parse_message(raw)
        try:
            extra = enrich(msg) if enrich is not None else None
        except Exception:  # extras only save time later: without one the work is done there
            extra = None
        out.append((msg, extra))
    return out


def _here(raws: Sequence[bytes]) -> list[Parsed]:
    return [(parse_message(raw), None) for raw in raws]


def _warm_up(owner: int) -> None:
    """A worker's start: die with the process that owns the pool, and import lazily loaded parts
    (bounce detection, HTML conversion) once per worker, not in a batch."""
    threading.Thread(target=_exit_with, args=(owner,), name="exit-with-owner", daemon=True).start()
    parse_message(b"From: a@b.test\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n")


def _exit_with(owner: int, every: float = 1.0) -> None:
    """End this worker once `owner` is gone (issue 9: `kill -9` of the daemon left both workers,
    and through them the fork server and the resource tracker, running: each holds a pipe the
    next needs closed). A worker's parent is the fork server, so the owner is watched by pid."""
    while True:
        time.sleep(every)
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:  # pid reused by another user's process: the owner is gone
            os._exit(0)


class ParsePool:
    """Parses batches of raw messages with `workers` processes (0: everything in this process)."""

    def __init__(self, workers: int, min_batch: int = MIN_BATCH, chunk: int = CHUNK, ahead: int = 0) -> None:
        """`ahead`: messages to keep parsed ahead of the consumer (at least two chunks a worker)."""
        self.workers = max(0, workers)
        self.min_batch = max(1, min_batch)
        self.chunk = max(1, chunk)
        self.window = max(2 * self.workers + 1, -(-ahead // self.chunk))  # chunks in flight
        self._executor: ProcessPoolExecutor | None = None
        self._failures = 0
        self._lock = threading.Lock()  # mailboxes are polled from several threads

    def parse(self, raws: Sequence[bytes]) -> Iterator[ParsedMessage]:
        """`parse_message` of every raw message, in order, computed ahead in the workers."""
        return (msg for msg, _ in self.parse_with(raws, None))

    def parse_with(self, raws: Sequence[bytes], enrich: Enrich | None) -> Iterator[Parsed]:
        """(message, `enrich(message)` worked out in a worker, or None) for every raw message."""
        executor = self._pool() if len(raws) >= self.min_batch else None
        if executor is None:
            for raw in raws:
                yield parse_message(raw), None
            return
        # Tasks: chunks of consecutive small messages; a big message is parsed here in its turn.
        tasks: list[tuple[int, int, bool]] = []  # (start, end, shipped)
        start = 0
        while start < len(raws):
            if len(raws[start]) > MAX_SHIPPED_BYTES:
                tasks.append((start, start + 1, False))
                start += 1
                continue
            end = start
            while end < len(raws) and end - start < self.chunk and len(raws[end]) <= MAX_SHIPPED_BYTES:
                end += 1
            tasks.append((start, end, True))
            start = end
        pending: deque[tuple[int, int, Future[list[Parsed]] | None]] = deque()
        submitted = 0
        try:
            while submitted < len(tasks) or pending:
                while submitted < len(tasks) and sum(f is not None for *_, f in pending) < self.window:
                    first, last, shipped = tasks[submitted]
                    future = self._submit(executor, list(raws[first:last]), enrich) if shipped else None
                    pending.append((first, last, future))
                    submitted += 1
                first, last, future = pending.popleft()
                yield from self._results(raws[first:last], future, executor)
        finally:
            for *_, future in pending:
                if future is not None:
                    future.cancel()

    def _submit(self, executor: ProcessPoolExecutor, raws: list[bytes],
                enrich: Enrich | None) -> Future[list[Parsed]] | None:
        try:
            return executor.submit(_parse_chunk, raws, enrich)
        except Exception as exc:  # a broken pool refuses work: parse here instead
            if self._executor is executor:
                self._broken(exc)
            return None

    def _results(self, raws: Sequence[bytes], future: Future[list[Parsed]] | None,
                 executor: ProcessPoolExecutor) -> list[Parsed]:
        if future is not None:
            try:
                return future.result(timeout=RESULT_TIMEOUT)
            except Exception as exc:  # a worker died (killed, out of memory) or hangs: nothing is lost
                if self._executor is executor:  # the first failure of this pool, not its echoes
                    self._broken(exc)
        return _here(raws)

    def _pool(self) -> ProcessPoolExecutor | None:
        with self._lock:
            return self._start()

    def _start(self) -> ProcessPoolExecutor | None:
        if self.workers == 0 or self._failures >= 3:
            return None
        if self._executor is None:
            try:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(["mailflow.parsing", "mailflow.ahead"])
                self._executor = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_warm_up,
                                                     initargs=(os.getpid(),))
            except Exception as exc:  # no /dev/shm, process limits: parse in this process
                self._failures += 1
                log.warning("cannot start parse workers (%s: %s); parsing in the intake process",
                            type(exc).__name__, exc)
                return None
        return self._executor

    def _broken(self, exc: BaseException) -> None:
        with self._lock:
            self._failures += 1
            executor, self._executor = self._executor, None
        log.warning("parse workers failed (%s: %s); parsing in the intake process%s", type(exc).__name__,
                    exc, "" if self._failures < 3 else " from now on")
        if executor is not None:
            for process in list(getattr(executor, "_processes", {}).values()):  # a hung one too
                with contextlib.suppress(Exception):
                    process.kill()
            executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
