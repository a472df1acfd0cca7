# -*- test-case-name: tests.modules_builtin.test_recording -*-
"""
The C{recording} module: named streams recorded to Matroska/WebM files (L{Recording}), on REST
request (/recorder/*), for every stream published with C{record: true} (the WebSocket
C{publishStream} field), or, with C{sip_record_stream}, every SIP call stream.

The file's name is set among the stream's properties as C{recordName} when the recording
starts: the gateway reports it to the publisher (the SDK's C{getRecordInfo()}), and the
folder is published on the HTTP site at L{RECORDS_PATH}, where the Stream Recording demo page
downloads it.

L{RecordingService} keeps the recordings in progress; L{RecordingModule} runs it with its
configuration keys and serves its REST methods.  A stream carrying a SIP call is one published
with a C{callId} property.
"""

from __future__ import annotations

import os
import uuid
from typing import Any, Callable, Optional

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.errors import Conflict, InvalidField, NotFound
from wcs_twisted.interfaces import IStreamObserver, IWcsModule
from wcs_twisted.modules_builtin.recording import (
    TEMPLATE_FIELDS,
    Recording,
    container_extension,
    is_sip_call_stream,
    render_file_name,
)
from wcs_twisted.toolkit.sinks import SerialWorker

__all__ = ["RECORDS_PATH", "RecordingModule", "RecordingService"]

#: Where the records folder is served on the HTTP site (WCS: <page origin>/client/records/).
RECORDS_PATH = "/client/records"


# --- the service --------------------------------------------------------------------------------


@implementer(IStreamObserver)
class RecordingService:
    """
    The C{"recorder"} service: REST /recorder/startup, /recorder/terminate, /recorder/find_all.

    @param streams: the L{IStreamRegistry}.
    @param clock: an IReactorTime (C{seconds()} gives C{startTime}).
    @param record_dir: where files go (created when needed).
    @param file_template: the default file name template (see L{render_file_name}).
    @param run_in_thread: runs a callable off the reactor thread, returning a Deferred.
    @param auto_record: record every SIP call stream (C{sip_record_stream}).

    Streams published with a true C{record} property are recorded whatever C{auto_record}
    says.
    """

    log = Logger()

    def __init__(self, streams, clock, *, record_dir: str, file_template: str,
                 run_in_thread: Callable[[Callable[[], Any]], Deferred],
                 auto_record: bool = False, log: Optional[Logger] = None) -> None:
        # A bad configured template fails the start.
        render_file_name(file_template, dict.fromkeys(TEMPLATE_FIELDS, "x"))
        self._streams = streams
        self._clock = clock
        self.record_dir = os.path.abspath(record_dir)
        self.file_template = file_template
        self._run_in_thread = run_in_thread
        self.auto_record = auto_record
        if log is not None:
            self.log = log
        self._recordings: dict[str, Recording] = {}
        self._closing: set[Deferred] = set()
        self._running = False

    def start(self) -> None:
        self._running = True
        self._streams.add_observer(self)
        for stream in self._streams.find({}):
            self.stream_published(stream)

    def stop(self) -> Deferred:
        """
        Finish every recording; fires once every file is complete.
        """
        self._running = False
        self._streams.remove_observer(self)
        for recording in list(self._recordings.values()):
            recording.finish("Requested stream shutdown")
        return DeferredList(list(self._closing), consumeErrors=True)

    # --- IStreamObserver --------------------------------------------------------------------------

    def stream_published(self, stream) -> None:
        wanted = stream.properties.get("record") is True or (
            self.auto_record and is_sip_call_stream(stream))
        if self._running and wanted and self._recording_of(stream) is None:
            try:
                self._start(stream, None)
            except Exception:
                self.log.failure("could not start recording stream {stream}",
                                 stream=stream.name)

    def stream_unpublished(self, stream, reason) -> None:
        """
        Nothing to do: the recording, a sink of the stream, was told first.
        """

    # --- the API ----------------------------------------------------------------------------------

    def startup(self, stream_name: Optional[str] = None, file_template: Optional[str] = None,
                *, media_session_id: Optional[str] = None) -> dict[str, Any]:
        """
        Start recording a stream, named by C{stream_name} or by its C{media_session_id}.

        @param file_template: this recording's file name template (REST
            C{config.fileTemplate}); None for the configured one.
        @return: the recording (L{Recording.describe}: C{fileName}, C{mediaSessionId},
            C{streamName}, C{startTime}).
        @raise NotFound: no such stream (404).
        @raise Conflict: the stream is being recorded already (409).
        @raise InvalidField: a bad template (400).
        """
        stream = self._find_stream(stream_name, media_session_id)
        if self._recording_of(stream) is not None:
            raise Conflict(f"stream {stream.name} is already being recorded")
        return self._start(stream, file_template).describe()

    def terminate(self, key: str) -> dict[str, Any]:
        """
        Stop a recording named by its C{mediaSessionId} or its stream's name; the file is
        completed in the background (L{Recording.closed}).

        @return: the recording's description.
        @raise NotFound: no such recording (404).
        """
        recording = self.get(key)
        if recording is None:
            raise NotFound(f"no recording {key}")
        recording.finish("Stopped by rest /terminate")
        return recording.describe()

    def find_all(self) -> list[dict[str, Any]]:
        """
        The recordings in progress (REST /recorder/find_all; empty means 404 there).
        """
        return [recording.describe() for recording in self._recordings.values()]

    def get(self, key: str) -> Optional[Recording]:
        """
        The recording in progress whose C{mediaSessionId} or stream name is C{key}.
        """
        recording = self._recordings.get(key)
        if recording is None:
            recording = next((r for r in self._recordings.values() if r.stream.name == key),
                             None)
        return recording

    # --- inside -----------------------------------------------------------------------------------

    def _find_stream(self, stream_name: Optional[str], media_session_id: Optional[str]):
        if stream_name:
            stream = self._streams.get(stream_name)
        elif media_session_id:
            found = self._streams.find({"mediaSessionId": media_session_id})
            stream = found[0] if found else None
        else:
            raise InvalidField("mediaSessionId", "a stream name or mediaSessionId is required")
        if stream is None:
            raise NotFound(f"stream {stream_name or media_session_id} not found")
        return stream

    def _recording_of(self, stream) -> Optional[Recording]:
        return next((r for r in self._recordings.values() if r.stream is stream), None)

    def _start(self, stream, file_template: Optional[str]) -> Recording:
        properties = stream.properties
        record_id = str(properties.get("mediaSessionId") or uuid.uuid4())
        start_time = int(self._clock.seconds() * 1000)
        fields = {
            "streamName": stream.name,
            "startTime": start_time,
            "mediaSessionId": record_id,
            "sessionId": properties.get("sessionId"),
            "appKey": properties.get("appKey"),
            "callId": properties.get("callId"),
        }
        description = stream.describe()
        extension = container_extension(description.get("audioCodec"),
                                        description.get("videoCodec"))
        try:
            name = render_file_name(file_template or self.file_template, fields, extension)
        except ValueError as error:
            raise InvalidField("fileTemplate", str(error)) from None
        path = self._unique_path(name)
        recording = Recording(
            stream, record_id, path, start_time, self._clock,
            lambda writer: SerialWorker(self._run_in_thread, writer.handle), self.log,
            self._finished)
        self._recordings[record_id] = recording
        # What the publisher's UNPUBLISHED says (recordName) and /stream/find shows.
        stream.properties["recordName"] = os.path.basename(path)
        self._closing.add(recording.closed)
        recording.closed.addBoth(self._closed, recording.closed)
        try:
            recording.start()
        except Exception:
            recording.finish("Failed by error")
            raise
        return recording

    def _unique_path(self, name: str) -> str:
        taken = {recording.path for recording in self._recordings.values()}
        stem, extension = os.path.splitext(name)
        path, number = os.path.join(self.record_dir, name), 1
        while path in taken or os.path.exists(path):
            path = os.path.join(self.record_dir, f"{stem}-{number}{extension}")
            number += 1
        return path

    def _finished(self, recording: Recording) -> None:
        if self._recordings.get(recording.record_id) is recording:
            del self._recordings[recording.record_id]

    def _closed(self, result, closed: Deferred):
        self._closing.discard(closed)
        return result


# --- the module ---------------------------------------------------------------------------------


@implementer(IWcsModule)
class RecordingModule:
    """
    The C{recording} module: runs a L{RecordingService}, provides it as C{"recorder"} and serves
    REST /recorder/*.  Its config keys are declared by its drop-in (plugins/wcs_recording.py).
    """

    name = "recording"

    def __init__(self) -> None:
        self.service: Optional[RecordingService] = None

    def start(self, context) -> None:
        from twisted.internet.threads import deferToThreadPool

        reactor = context.reactor
        auto_record = context.settings.sip_record_stream
        self.service = RecordingService(
            context.streams, context.clock,
            record_dir=context.setting("record_dir"),
            file_template=context.setting("record_file_template"),
            run_in_thread=lambda job: deferToThreadPool(reactor, reactor.getThreadPool(), job),
            auto_record=auto_record,
            log=context.log)
        self.service.start()
        context.provide("recorder", self.service)
        _serve(context, self.service)
        context.serve_directory(RECORDS_PATH, self.service.record_dir)
        context.log.info("recording to {folder}{auto}", folder=self.service.record_dir,
                         auto=" (every SIP call stream)" if auto_record else "")

    def stop(self) -> Deferred:
        service, self.service = self.service, None
        if service is None:
            return succeed(None)
        return service.stop()


def _serve(context, service: RecordingService) -> None:
    """
    REST /recorder/startup, /recorder/terminate and /recorder/find_all over C{service}.
    """

    def startup(body: dict[str, Any]) -> dict[str, Any]:
        config = body.get("config") or {}
        if not isinstance(config, dict):
            raise InvalidField("config", "expected an object")
        return service.startup(body.get("streamName"), config.get("fileTemplate"),
                               media_session_id=body.get("mediaSessionId"))

    def terminate(body: dict[str, Any]) -> dict[str, Any]:
        key = body.get("mediaSessionId") or body.get("streamName")
        if not isinstance(key, str) or not key:
            raise InvalidField("mediaSessionId", "required, as text")
        return service.terminate(key)

    def find_all(body: dict[str, Any]) -> list[dict[str, Any]]:
        found = service.find_all()
        if not found:
            raise NotFound("No recordings")
        return found

    context.route("POST", "/recorder/startup", startup, summary="Record a stream (Matroska).",
                  fields={"mediaSessionId": ("string", "the stream's id"),
                          "streamName": ("string", "or its name"),
                          "config": ("object", "{fileTemplate}")},
                  answers={"200": "fileName, mediaSessionId, streamName",
                           "404": "No such stream", "409": "Already recording"})
    context.route("POST", "/recorder/terminate", terminate,
                  summary="Stop a recording; the file is completed.",
                  fields={"mediaSessionId": ("string", "or streamName"),
                          "streamName": ("string", "")},
                  answers={"200": "Stopped", "404": "Unknown recording"})
    context.route(("GET", "POST"), "/recorder/find_all", find_all, summary="List recordings.",
                  fields={}, answers={"200": "Array of {fileName, mediaSessionId}",
                                      "404": "None"})
