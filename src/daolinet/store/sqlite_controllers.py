"""The SQLite store's controller records (store/controllers.py): one row per
controller id, its address lists as JSON."""

from __future__ import annotations

import sqlite3
from abc import abstractmethod
from contextlib import AbstractContextManager

from daolinet.model.objects import ControllerRecord
from daolinet.store.base import Store
from daolinet.store.controllers import check_controller
from daolinet.store.sqlite_schema import Tx, controller_of


class SqliteControllers(Store):
    @abstractmethod
    def _write(self) -> AbstractContextManager[Tx]: ...

    @abstractmethod
    def _rows(self, sql: str, *args: object) -> list[sqlite3.Row]: ...

    @staticmethod
    def _controller_objects(db: sqlite3.Connection) -> list[ControllerRecord]:
        return [controller_of(r) for r in db.execute("SELECT * FROM controllers ORDER BY id")]

    async def record_controller(self, controller: ControllerRecord) -> ControllerRecord:
        checked = check_controller(controller)
        with self._write() as tx:
            tx.put(checked)
            tx.record(checked)
        return checked

    async def list_controllers(self) -> list[ControllerRecord]:
        return [controller_of(r) for r in self._rows("SELECT * FROM controllers ORDER BY id")]

