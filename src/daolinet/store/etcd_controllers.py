"""The etcd store's controller records (store/controllers.py): one key per
controller id, controller/<id>, put whole by each start of that controller."""

from __future__ import annotations

from daolinet.model.objects import ControllerRecord
from daolinet.store.controllers import check_controller
from daolinet.store.etcd_base import EtcdBase
from daolinet.store.etcd_tx import EtcdTx


class EtcdControllers(EtcdBase):
    async def record_controller(self, controller: ControllerRecord) -> ControllerRecord:
        checked = check_controller(controller)

        async def write(tx: EtcdTx) -> ControllerRecord:
            old = await self._get(tx.read, self._keys.controller(checked.id), ControllerRecord)
            tx.put(checked, old)
            tx.record(checked)
            return checked
        return await self._write(write)

    async def list_controllers(self) -> list[ControllerRecord]:
        found = await self._consistent(lambda r: self._all(r, self._keys.all("controller"), ControllerRecord))
        return sorted(found, key=lambda c: c.id)
