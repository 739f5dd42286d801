"""`LoadingCache`: values read from the store once and remembered, each read shared by every
caller that misses the same key while it is in flight (Caffeine's `AsyncLoadingCache`, Go's
`singleflight`).

Without the sharing, the first burst of requests after a start or a change (32 clients
starting runs of a flow) each missed the cache, each read the same row on a connection of its
own: the pool opened 19 connections, and the burst took 7 times as long as the next one.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Hashable, MutableMapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_MISSING = object()


def _always(_value: object) -> bool:
    return True


class LoadingCache(Generic[K, V]):
    def __init__(
        self,
        values: MutableMapping[K, V] | None,
        *,
        keep: Callable[[V], bool] = _always,
    ) -> None:
        """`values`: where the values are remembered (a dict, or a cachetools cache that
        bounds them or lets them expire); None remembers nothing, and concurrent reads are
        still shared. `keep`: which values are remembered ("no such flow" need not be)."""
        self._values = values
        self._keep = keep
        # The reads in flight; one `forget` detached is stale: its value is not remembered.
        self._loading: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The value of `key`: remembered, or the one a read in flight will give, or
        `load()`'s. A failed read raises in every caller that awaited it, and is not
        remembered. A caller cancelled while it waits does not cancel the read."""
        if self._values is not None:
            value = self._values.get(key, _MISSING)
            if value is not _MISSING:
                return value  # type: ignore[return-value]
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.ensure_future(load())
            self._loading[key] = loading
            loading.add_done_callback(functools.partial(self._landed, key))
        return await asyncio.shield(loading)

    def forget(self, key: K | None = None) -> None:
        """Forget every value, or `key`'s, after a change: the reads in flight may predate it,
        so later callers start their own, and what those reads return is not remembered."""
        if key is None:
            self._loading.clear()
            if self._values is not None:
                self._values.clear()
        else:
            self._loading.pop(key, None)
            if self._values is not None:
                self._values.pop(key, None)

    def _landed(self, key: K, loading: asyncio.Future[V]) -> None:
        """Remember what a read gave, unless it failed or `forget` detached it. Runs before
        its waiters resume (their callbacks come after this one)."""
        # The exception is retrieved here: no "never retrieved" warning when nobody waited.
        failed = loading.cancelled() or loading.exception() is not None
        if self._loading.get(key) is not loading:
            return
        del self._loading[key]
        if not failed and self._values is not None and self._keep(loading.result()):
            self._values[key] = loading.result()
