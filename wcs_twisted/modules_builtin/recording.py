# -*- test-case-name: tests.modules_builtin.test_recording -*-
"""
The C{recording} module: named streams written to Matroska files that survive a crash.

A L{Recording} is a stream sink.  On the reactor thread it only turns RTP payloads into timed
samples (H.264 access units rebuilt from RFC 6184 packets, timestamps from the RTP clocks on one
timeline, see L{wcs_twisted.media.depacketize}); the file work (PyAV muxing, disk writes,
L{wcs_twisted.media.matroska}) runs in the reactor's thread pool through a L{SerialWorker}, in
order and with a bounded backlog, so a slow disk never stalls calls.

The container is Matroska written as it goes, a cluster flushed every second, so a server killed
mid-call leaves a playable file.  Opus and H.264 are stored as they arrive; G.711 as the 16-bit
PCM it decodes to.

The service it offers the REST API as C{"recorder"}: L{RecordingService.startup},
L{RecordingService.terminate}, L{RecordingService.find_all}.  With C{sip_record_stream=true}
every SIP call stream (a stream published with a C{callId} property) is recorded.
"""

from __future__ import annotations

import os
import re
import string
import uuid
from typing import Any, Callable, Optional

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.interfaces import IStreamObserver, IStreamSink, IWcsModule
from wcs_twisted.media.matroska import AUDIO_TRACKS, AudioTrack, MatroskaWriter, VideoTrack
from wcs_twisted.media.depacketize import (
    H264Depacketizer,
    MediaTimeline,
    RtpClock,
    annex_b,
    codec_of,
    opus_packet_samples,
    parse_sps,
)
from wcs_twisted.errors import Conflict, InvalidField, NotFound

__all__ = [
    "DEFAULT_FILE_TEMPLATE",
    "Recording",
    "RecordingModule",
    "RecordingService",
    "SerialWorker",
    "is_sip_call_stream",
    "render_file_name",
]

DEFAULT_FILE_TEMPLATE = "{streamName}-{startTime}"
EXTENSION = ".mkv"

#: Fields a file name template may use.
TEMPLATE_FIELDS = frozenset({"streamName", "startTime", "mediaSessionId", "sessionId", "appKey",
                             "callId"})

#: Longest a recording waits for the tracks it expects (the first H.264 keyframe, the first audio
#: packet) before it starts the file with the tracks it has.
TRACK_WAIT = 4.0

#: How often a recording waiting for a keyframe asks the stream for one again.
KEYFRAME_RETRY = 1.0

#: Packets waiting for the writer thread beyond this many are dropped (about 20 s of media).
MAX_BACKLOG = 2000


def is_sip_call_stream(stream) -> bool:
    """
    Whether C{stream} carries a SIP call's media: the call layer publishes those with the call's
    C{callId} among the stream properties.
    """
    return bool(stream.properties.get("callId"))


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def render_file_name(template: str, fields: dict[str, Any]) -> str:
    """
    The file name a template gives: C{{field}} replaced by the field's value, with every
    character but letters, digits, C{.}, C{_} and C{-} made C{_} (a stream name cannot reach
    outside the records folder), and C{.mkv} added unless the template ends with it.  A name
    that comes out empty (fields without values) is C{record.mkv}.

    @raise ValueError: the template names an unknown field, uses a format spec, or contains a
        path separator.
    """
    if not template or "/" in template or "\\" in template or "\x00" in template:
        raise ValueError("a file template is a non-empty file name without '/'")
    parts = []
    for literal, field_name, spec, conversion in string.Formatter().parse(template):
        parts.append(literal)
        if field_name is None:
            continue
        if field_name not in TEMPLATE_FIELDS or spec or conversion:
            raise ValueError(f"unknown template field {{{field_name}}}; known: "
                             + ", ".join(sorted(TEMPLATE_FIELDS)))
        value = fields.get(field_name)
        parts.append(_UNSAFE.sub("_", "" if value is None else str(value)))
    name = "".join(parts) or "record"
    if not name.endswith(EXTENSION):
        name += EXTENSION
    return name


# --- the worker ---------------------------------------------------------------------------------


class SerialWorker:
    """
    Runs jobs in submission order on another thread: one batch at a time, bounded backlog.

    @param run: runs a callable away from the reactor thread and returns a Deferred of its
        result (C{deferToThreadPool} on the reactor's pool; a synchronous call in unit tests).
    @param handle: called (on that thread) with each batch, a list of submitted items.
    @param limit: items waiting beyond this are refused (L{submit} returns False).
    """

    def __init__(self, run: Callable[[Callable[[], Any]], Deferred],
                 handle: Callable[[list], None], limit: int = MAX_BACKLOG) -> None:
        self._run = run
        self._handle = handle
        self._limit = limit
        self._queue: list = []
        self._busy = False
        self._idle: list[Deferred] = []
        #: The failure of a batch, after which nothing more is run.
        self.failure = None
        #: Items refused because the backlog was full.
        self.dropped = 0

    def submit(self, item, force: bool = False) -> bool:
        """
        Queue C{item}; C{force} bypasses the backlog limit (for control items).

        @return: False if it was refused (backlog full, or the worker failed).
        """
        if self.failure is not None:
            return False
        if not force and len(self._queue) >= self._limit:
            self.dropped += 1
            return False
        self._queue.append(item)
        if not self._busy:
            self._next()
        return True

    def _next(self) -> None:
        batch, self._queue = self._queue, []
        self._busy = True
        running = self._run(lambda: self._handle(batch))
        running.addCallbacks(self._done, self._failed)

    def _done(self, _: object) -> None:
        self._busy = False
        if self._queue:
            self._next()
        else:
            self._fire_idle()

    def _failed(self, failure) -> None:
        self._busy = False
        self.failure = failure
        self._queue = []
        self._fire_idle()

    def _fire_idle(self) -> None:
        waiters, self._idle = self._idle, []
        for waiter in waiters:
            waiter.callback(None)

    def idle(self) -> Deferred:
        """
        A Deferred that fires once every submitted item has been handled (or the worker failed).
        """
        if not self._busy:
            return succeed(None)
        waiter: Deferred = Deferred()
        self._idle.append(waiter)
        return waiter


# --- the sink -----------------------------------------------------------------------------------


@implementer(IStreamSink)
class Recording:
    """
    Records one stream (an L{IStreamSink}); made by L{RecordingService.startup}.

    @ivar closed: a Deferred firing with the file's path once the file is complete (or None if
        nothing was recorded), after the stream ended or the recording was terminated.
    """

    def __init__(self, stream, record_id: str, path: str, start_time: int, clock,
                 worker_factory: Callable[[MatroskaWriter], SerialWorker], log: Logger,
                 on_finished: Callable[["Recording"], None]) -> None:
        self.stream = stream
        self.record_id = record_id
        self.path = path
        self.start_time = start_time
        self._clock = clock
        self._log = log
        self._on_finished = on_finished
        self.writer = MatroskaWriter(path)
        self.worker = worker_factory(self.writer)
        description = stream.describe()
        audio_name, _ = codec_of(description.get("audioCodec"))
        video_name, _ = codec_of(description.get("videoCodec"))
        # None (not declared by the source) means "take what comes".
        self._expect_audio = audio_name in AUDIO_TRACKS or not audio_name
        self._expect_video = video_name == "h264"
        self.kinds = ("audio", "video") if self._expect_video else ("audio",)
        self._timeline = MediaTimeline()
        self._audio_track: Optional[AudioTrack] = None
        self._audio_clock: Optional[RtpClock] = None
        self._audio_end = 0
        self._audio_codec_name: Optional[str] = None
        self._video_track: Optional[VideoTrack] = None
        self._video_clock: Optional[RtpClock] = None
        self._depacketizer = H264Depacketizer()
        self._video_codec_seen: Optional[str] = None
        self._video_recorded = False
        self._lost_seen = 0
        self._need_keyframe = True
        self._held_video: Optional[tuple] = None
        self._last_video_pts = -1
        self._last_video_duration = 3000
        self._opened = False
        self._early: list = []
        self._waited = False
        self._timer = None
        self._keyframe_timer = None
        self._warned: set[str] = set()
        self.finished = False
        self.closed: Deferred = Deferred()

    def describe(self) -> dict[str, Any]:
        """
        The recording as REST /recorder/find_all lists it.
        """
        return {
            "fileName": os.path.basename(self.path),
            "mediaSessionId": self.record_id,
            "streamName": self.stream.name,
            "startTime": self.start_time,
        }

    def start(self) -> None:
        self._timer = self._clock.callLater(TRACK_WAIT, self._wait_over)
        if self._expect_video:
            self._keyframe_timer = self._clock.callLater(KEYFRAME_RETRY, self._ask_keyframe)
        self.stream.attach(self)

    # --- packets (reactor thread) -----------------------------------------------------------------

    def packet_received(self, kind: str, payload: bytes, codec_name: str, timestamp: int,
                        marker: bool) -> None:
        if self.finished:
            return
        now = self._clock.seconds()
        if kind == "audio":
            self._audio_packet(payload, codec_name, timestamp, now)
        else:
            self._video_packet(payload, codec_name, timestamp, marker, now)

    def _audio_packet(self, payload: bytes, codec_name: str, timestamp: int, now: float) -> None:
        if codec_name != self._audio_codec_name:
            name, rate = codec_of(codec_name)
            if self._audio_track is None:
                track = AUDIO_TRACKS.get(name)
                if track is None or self._opened:
                    self._warn("audio codec " + codec_name, "audio codec {codec} is not "
                               "recorded", codec=codec_name)
                    return
                self._audio_track = track
                self._audio_clock = RtpClock(rate or track.rate, self._timeline)
            elif AUDIO_TRACKS.get(name) is not self._audio_track:
                self._warn("audio change " + codec_name, "audio codec changed to {codec} "
                           "mid-recording; those packets are left out", codec=codec_name)
                return
            self._audio_codec_name = codec_name
        track = self._audio_track
        duration = opus_packet_samples(payload) if track.source == "opus" else len(payload)
        if duration <= 0:
            return
        pts = round(self._audio_clock.seconds(timestamp, now) * track.rate)
        if pts + duration // 2 < self._audio_end:
            return  # late or duplicate
        pts = max(pts, self._audio_end)
        self._audio_end = pts + duration
        self._emit(("audio", payload, pts, duration))

    def _video_packet(self, payload: bytes, codec_name: str, timestamp: int, marker: bool,
                      now: float) -> None:
        if codec_name != self._video_codec_seen:
            self._video_codec_seen = codec_name
            self._video_recorded = codec_name.upper().startswith("H264/")
            if not self._video_recorded:
                self._warn("video " + codec_name, "video codec {codec} is not recorded",
                           codec=codec_name)
        if not self._video_recorded:
            return
        for unit in self._depacketizer.feed(payload, timestamp, marker):
            self._access_unit(unit, now)
        if self._depacketizer.lost != self._lost_seen:
            self._lost_seen = self._depacketizer.lost
            self._need_keyframe = True
            self.stream.request_keyframe()

    def _access_unit(self, unit, now: float) -> None:
        if self._need_keyframe:
            if not unit.decodable_start:
                return
            self._need_keyframe = False
        if self._video_track is None:
            if self._opened:
                return  # the file started without video
            try:
                sps = parse_sps(unit.sps)
            except ValueError:
                self._warn("sps", "unreadable H.264 SPS; waiting for another keyframe")
                self._need_keyframe = True
                return
            self._video_track = VideoTrack(sps.width, sps.height)
            self._video_clock = RtpClock(90000, self._timeline)
            self._cancel_keyframe_timer()
        pts = round(self._video_clock.seconds(unit.timestamp, now) * 90000)
        pts = max(pts, self._last_video_pts + 1)
        self._last_video_pts = pts
        self._release_video(pts)
        self._held_video = (annex_b(unit.with_parameter_sets()), pts, unit.keyframe)

    def _release_video(self, next_pts: Optional[int]) -> None:
        """
        Write the video frame held back, now that the next one gives its duration.
        """
        held, self._held_video = self._held_video, None
        if held is None:
            return
        data, pts, keyframe = held
        if next_pts is not None:
            self._last_video_duration = max(1, min(next_pts - pts, 90000))
        self._emit(("video", data, pts, self._last_video_duration, keyframe))

    def _emit(self, item: tuple) -> None:
        if not self._opened:
            self._early.append(item)
            if len(self._early) > MAX_BACKLOG:
                del self._early[0]
            self._maybe_open()
            return
        if not self.worker.submit(item):
            if self.worker.failure is not None:
                self.finish("Failed by error")  # the file cannot be written any more
                return
            self._warn("backlog", "the disk is too slow: media is being dropped")
            if item[0] == "video":
                self._need_keyframe = True
                self.stream.request_keyframe()

    # --- the header -------------------------------------------------------------------------------

    def _maybe_open(self) -> None:
        audio_ready = self._audio_track is not None or not self._expect_audio
        video_ready = self._video_track is not None or not self._expect_video
        have_any = self._audio_track is not None or self._video_track is not None
        if have_any and ((audio_ready and video_ready) or self._waited):
            self._open()

    def _wait_over(self) -> None:
        self._timer = None
        self._waited = True
        if self._expect_video and self._video_track is None:
            self._warn("no keyframe", "no H.264 keyframe within {wait} s: recording without "
                       "video", wait=TRACK_WAIT)
        self._maybe_open()

    def _ask_keyframe(self) -> None:
        self._keyframe_timer = None
        if self._video_track is None and not self.finished:
            self.stream.request_keyframe()
            self._keyframe_timer = self._clock.callLater(KEYFRAME_RETRY, self._ask_keyframe)

    def _cancel_keyframe_timer(self) -> None:
        if self._keyframe_timer is not None and self._keyframe_timer.active():
            self._keyframe_timer.cancel()
        self._keyframe_timer = None

    def _open(self) -> None:
        self._opened = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._video_track is None:
            self._cancel_keyframe_timer()
        self.worker.submit(("open", self._audio_track, self._video_track), force=True)
        early, self._early = self._early, []
        for item in early:
            if item[0] == "audio" and self._audio_track is None:
                continue
            if item[0] == "video" and self._video_track is None:
                continue
            self.worker.submit(item, force=True)
        self._log.info("recording {stream} to {path}", stream=self.stream.name, path=self.path)

    # --- the end ----------------------------------------------------------------------------------

    def stream_ended(self, reason: str) -> None:
        self.finish(reason)

    def finish(self, reason: str = "terminated") -> Deferred:
        """
        Stop recording: detach, write what is held back and complete the file.

        @return: L{closed}.
        """
        if self.finished:
            return self.closed
        self.finished = True
        self.stream.detach(self)
        for timer in (self._timer, self._keyframe_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._timer = self._keyframe_timer = None
        if self._opened:
            self._release_video(None)
            self.worker.submit(("close",), force=True)
        elif self._audio_track is not None or self._video_track is not None:
            self._open()
            self._release_video(None)
            self.worker.submit(("close",), force=True)
        self._on_finished(self)

        def done(_: object) -> None:
            if self.worker.failure is not None:
                self._log.failure("recording {stream} to {path} failed", self.worker.failure,
                                  stream=self.stream.name, path=self.path)
            if self.worker.dropped:
                self._log.warn("recording {stream}: {count} packets dropped (disk too slow)",
                               stream=self.stream.name, count=self.worker.dropped)
            recorded = self._opened and os.path.exists(self.path)
            self._log.info("recording {stream} finished ({reason}): {path}",
                           stream=self.stream.name, reason=reason,
                           path=self.path if recorded else "nothing recorded")
            self.closed.callback(self.path if recorded else None)

        self.worker.idle().addCallback(done)
        return self.closed

    def _warn(self, key: str, text: str, **fields: Any) -> None:
        if key in self._warned:
            return
        self._warned.add(key)
        self._log.warn("recording {stream}: " + text, stream=self.stream.name, **fields)


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
        if self.auto_record:
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
        if self._running and self.auto_record and is_sip_call_stream(stream) \
                and self._recording_of(stream) is None:
            try:
                self._start(stream, None)
            except Exception:
                self.log.failure("could not start recording SIP call stream {stream}",
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
        try:
            name = render_file_name(file_template or self.file_template, fields)
        except ValueError as error:
            raise InvalidField("fileTemplate", str(error)) from None
        path = self._unique_path(name)
        recording = Recording(
            stream, record_id, path, start_time, self._clock,
            lambda writer: SerialWorker(self._run_in_thread, writer.handle), self.log,
            self._finished)
        self._recordings[record_id] = recording
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
        stem, extension = name[:-len(EXTENSION)], EXTENSION
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
    The C{recording} module: runs a L{RecordingService} and provides it as C{"recorder"}.
    """

    name = "recording"

    def __init__(self) -> None:
        self.service: Optional[RecordingService] = None

    def start(self, context) -> None:
        from twisted.internet.threads import deferToThreadPool

        reactor = context.reactor
        settings = context.settings
        self.service = RecordingService(
            context.streams, context.clock,
            record_dir=settings.record_dir,
            file_template=settings.record_file_template,
            run_in_thread=lambda job: deferToThreadPool(reactor, reactor.getThreadPool(), job),
            auto_record=settings.sip_record_stream,
            log=context.log)
        self.service.start()
        context.provide("recorder", self.service)
        context.log.info("recording to {folder}{auto}", folder=self.service.record_dir,
                         auto=" (every SIP call stream)" if settings.sip_record_stream else "")

    def stop(self) -> Deferred:
        service, self.service = self.service, None
        if service is None:
            return succeed(None)
        return service.stop()
