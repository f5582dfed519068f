"""What ``SqlStore`` provides to the statement groups mixed into it (schedules, durable
waits, lookups): declared once here so that each group can be type-checked on its own."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from sqlalchemy.ext.asyncio import AsyncConnection

from asyncjobs.storage.codec import Codec
from asyncjobs.storage.inserts import Fetch, InsertSql


class Provided:
    """Connections, transactions and codecs, as ``SqlStore`` implements them."""

    def write(self, *, single: bool = False) -> AbstractAsyncContextManager[AsyncConnection]:
        raise NotImplementedError

    def read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        raise NotImplementedError

    def held_transaction(self, *, single: bool = False) -> AbstractAsyncContextManager[Fetch]:
        raise NotImplementedError

    @property
    def inserts(self) -> InsertSql:
        raise NotImplementedError

    @property
    def codec(self) -> Codec:
        raise NotImplementedError
