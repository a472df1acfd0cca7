# -*- test-case-name: tests.test_logs -*-
"""
Structured log output: JSON lines for log collectors.

C{twistd --logger=wcs_twisted.logs.json_observer -n wcs} makes the console JSON; the
C{log_json_file} key adds a JSON file beside twistd's own log.
"""

from __future__ import annotations

import io
import sys

from twisted.application.service import Service
from twisted.logger import ILogObserver, LogPublisher, jsonFileLogObserver


def json_observer() -> ILogObserver:
    """
    A log observer writing JSON lines to standard output (for C{twistd --logger}).
    """
    return jsonFileLogObserver(io.TextIOWrapper(sys.stdout.buffer, line_buffering=True),
                               recordSeparator="")


class JSONLogFileService(Service):
    """
    Adds a JSON-lines observer for a file while the service runs.
    """

    def __init__(self, path: str, publisher: LogPublisher) -> None:
        self.setName("json-log")
        self.path = path
        self._publisher = publisher
        self._file = None
        self._observer = None

    def startService(self) -> None:
        super().startService()
        self._file = open(self.path, "a", encoding="utf-8", buffering=1)
        self._observer = jsonFileLogObserver(self._file, recordSeparator="")
        self._publisher.addObserver(self._observer)

    def stopService(self) -> None:
        super().stopService()
        if self._observer is not None:
            self._publisher.removeObserver(self._observer)
            self._observer = None
        if self._file is not None:
            self._file.close()
            self._file = None
