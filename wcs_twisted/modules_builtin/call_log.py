# -*- test-case-name: tests.test_modules -*-
"""
The C{call_log} module: an audit trail of every call, for operators and billing checks.

Every call status change (and every transfer status change) becomes one structured
C{twisted.logger} event whose format fields carry the call's id, parties, status, SIP status, WCS
info and, when a call ends, how long it was established.  With C{call_log_file} set, the same
record is appended to that file as one JSON object per line, flushed at once so the trail survives
a crash.  DTMF digits are deliberately not logged: they are often PINs.

It uses only its L{IModuleContext}: its C{call_log_file} setting (declared by its drop-in),
clock, log and the call observer registration.
"""

from __future__ import annotations

import json
from typing import Any, Optional, TextIO

from zope.interface import implementer

from wcs_twisted.interfaces import ICallObserver, IWcsModule

__all__ = ["CallLog"]

#: WCS statuses that end a call.
_RELEASED = frozenset({"FINISH", "FAILED", "BUSY"})


@implementer(IWcsModule, ICallObserver)
class CallLog:
    """
    Logs calls; see the module docstring.
    """

    name = "call_log"

    def __init__(self) -> None:
        self._context: Any = None
        self._file: Optional[TextIO] = None
        self._established: dict[str, float] = {}

    def start(self, context) -> None:
        path = context.setting("call_log_file")
        if path:
            # An unwritable file fails the start: the module is then logged and skipped.
            self._file = open(path, "a", encoding="utf-8")
        self._context = context
        context.add_call_observer(self)
        context.log.info("call log started{target}",
                         target=f", appending JSON lines to {path}" if path else "")

    def stop(self) -> None:
        if self._context is not None:
            self._context.remove_call_observer(self)
            self._context = None
        if self._file is not None:
            self._file.close()
            self._file = None
        self._established.clear()

    # --- ICallObserver ----------------------------------------------------------------------------

    def call_status_changed(self, call, info) -> None:
        if self._context is None:
            return
        wcs = call.to_wcs()
        call_id, status = wcs["callId"], wcs["status"]
        now = self._context.clock.seconds()
        duration = None
        if status == "ESTABLISHED":
            self._established.setdefault(call_id, now)
        elif status in _RELEASED:
            since = self._established.pop(call_id, None)
            duration = 0.0 if since is None else round(now - since, 3)
        record = self._record(now, "status", wcs, status=status, sipStatus=wcs.get("sipStatus"),
                              info=info, duration=duration)
        self._context.log.info(
            "call {call_id} {status} ({direction} {caller} -> {callee}) sip_status={sip_status} "
            "info={info} duration={duration}",
            call_id=call_id, status=status, direction=record["direction"],
            caller=record["caller"], callee=record["callee"], sip_status=record["sipStatus"],
            info=info, duration=duration, session_id=record["sessionId"],
            app_key=record["appKey"], node_id=record["nodeId"], call_log=record)
        self._write(record)

    def call_transfer_changed(self, call, status) -> None:
        if self._context is None:
            return
        wcs = call.to_wcs()
        value = getattr(status, "value", status)
        record = self._record(self._context.clock.seconds(), "transfer", wcs, status=value,
                              target=wcs.get("target"))
        self._context.log.info("call {call_id} transfer {status} to {target}",
                               call_id=wcs["callId"], status=value, target=record["target"],
                               call_log=record)
        self._write(record)

    def call_dtmf_received(self, call, digit, method) -> None:
        """
        Digits are not logged: they are often PINs.
        """

    # --- records ----------------------------------------------------------------------------------

    @staticmethod
    def _record(now: float, event: str, wcs: dict[str, Any], **fields: Any) -> dict[str, Any]:
        record = {
            "time": now,
            "event": event,
            "callId": wcs.get("callId"),
            "direction": "incoming" if wcs.get("incoming") else "outgoing",
            "caller": wcs.get("caller"),
            "callee": wcs.get("callee"),
            "sessionId": wcs.get("sessionId"),
            "appKey": wcs.get("appKey"),
            "nodeId": wcs.get("nodeId"),
        }
        record.update(fields)
        return record

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
        self._file.flush()
