"""Batches prepared ahead in a background thread, so that on a GPU the host's share of the next batch (its random
draws, gathering and the augmentation's kernel launches) overlaps the device's step on this one.

The thread draws from the epoch's generator in the same order as the loop would, so the batches are the same ones; a
CPU does without it, since there the data path and the step compete for the same cores.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

_END = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def prefetch(items: Iterator, depth: int = 2) -> Iterator:
    """The items of `items` in order, produced up to `depth` ahead by a thread; its error is raised here, and a
    consumer that stops early stops the thread."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                ready.put(item)
            ready.put(_END)
        except BaseException as error:  # handed to the consumer, which raises it
            ready.put(_Failure(error))

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _END:
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # free a producer blocked on a full queue
            try:
                ready.get(timeout=0.01)
            except queue.Empty:
                pass
        thread.join()
