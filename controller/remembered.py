"""A bounded map shared by the handler threads, oldest forgotten first: what the controller learnt from one API
read and need not read again (facts that do not change for the object's uid)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")


class Remembered(Generic[V]):
    def __init__(self, size: int) -> None:
        self._items: OrderedDict[str, V] = OrderedDict()
        self._size, self._lock = size, threading.Lock()

    def get(self, key: str) -> tuple[bool, V | None]:
        """(True, value) when remembered, else (False, None)."""
        with self._lock:
            if key not in self._items:
                return False, None
            self._items.move_to_end(key)
            return True, self._items[key]

    def put(self, key: str, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
