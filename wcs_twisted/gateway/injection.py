# -*- test-case-name: tests.gateway.test_stream_table -*-
"""
Streams injected into calls (REST /call/inject_stream).

A stream's audio is played into a call's SIP leg by a stream sink, and the call's bridge (when it
has one) stops forwarding the browser's audio to that leg meanwhile.  Terminating the injection,
the stream ending or the call ending gives the SIP party the browser's audio back.
"""

from __future__ import annotations

from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.errors import DomainError, InvalidField, NotFound
from wcs_twisted.gateway.streams import STREAM_NOT_FOUND, safely
from wcs_twisted.interfaces import ICallObserver, IPausableBridge

CALL_NOT_FOUND = "Call not found"


def _required_text(value, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidField(field, "required text")
    return value


class Injection:
    """
    A stream played into a call's SIP leg, and the bridge paused for it (its audio into that
    leg), if the call has one.
    """

    def __init__(self, media, stream_name: str) -> None:
        self.media = media
        self.stream_name = stream_name
        self.sink = None
        self.bridge = None

    def bridge_changed(self, bridge) -> None:
        """
        Pause C{bridge} (the call's current one, or None) into the SIP leg, once.
        """
        if bridge is self.bridge:
            return
        self.restore()
        pausable = IPausableBridge(bridge, None)
        if pausable is not None:
            pausable.pause_audio_to(self.media, True)
            self.bridge = bridge

    def restore(self) -> None:
        """
        Let the paused bridge's audio into the SIP leg again.
        """
        bridge, self.bridge = self.bridge, None
        if bridge is not None:
            try:
                IPausableBridge(bridge).pause_audio_to(self.media, False)
            except ValueError:
                pass  # the bridge no longer joins this leg


@implementer(ICallObserver)
class Injections:
    """
    The stream injected into each call, by callId.

    @param registry: the server's L{wcs_twisted.interfaces.IStreamRegistry}.
    @param media: the media factory (its L{wcs_twisted.interfaces.IMediaStreams} part).
    @param calls: the L{wcs_twisted.gateway.call_table.CallTable}, or None.
    """

    log = Logger()

    def __init__(self, registry, media, calls) -> None:
        self.registry = registry
        self.media = media
        self.calls = calls
        self._injections: dict[str, Injection] = {}

    def inject(self, call_id, stream_name) -> None:
        """
        The SIP party of call C{call_id} hears the audio of stream C{stream_name} instead of the
        browser's (relayed when the stream's codec is the leg's, transcoded otherwise).  A call
        that already has a stream injected switches to the new one.

        @raise InvalidField: a name is missing or not text (HTTP 400).
        @raise NotFound: no such call (or it ended), or no such stream (HTTP 404).
        @raise DomainError: the call's SIP leg has no audio yet (HTTP 500).
        """
        call_id = _required_text(call_id, "callId")
        stream_name = _required_text(stream_name, "streamName")
        call = self._live_call(call_id)
        stream = self.registry.get(stream_name)
        if stream is None:
            raise NotFound(STREAM_NOT_FOUND)
        media = call.rtp
        if media is None or media.audio_codec is None:
            raise DomainError(f"Call {call_id} has no SIP audio to inject into")
        self._end(call_id)
        injection = Injection(media, stream_name)

        def ended(reason: str) -> None:
            if self._injections.get(call_id) is injection:
                self._end(call_id)

        injection.sink = sink = self.media.stream_sink(media, ended)
        injection.bridge_changed(call.bridge)
        try:
            sink.play(stream)
        except Exception:
            injection.restore()
            raise
        self._injections[call_id] = injection
        self.log.info("call {call_id}: stream {name} injected into the SIP leg",
                      call_id=call_id, name=stream_name)

    def stop(self, call_id) -> None:
        """
        The SIP party hears the browser again.

        @raise NotFound: no such call, or no stream injected into it (HTTP 404).
        """
        call_id = _required_text(call_id, "callId")
        self._live_call(call_id)
        if not self._end(call_id):
            raise NotFound(f"No stream is injected into call {call_id}")

    def stream_name(self, call_id: str) -> str | None:
        """
        The name of the stream injected into call C{call_id}, or None.
        """
        injection = self._injections.get(call_id)
        return None if injection is None else injection.stream_name

    def _live_call(self, call_id: str):
        call = None
        if self.calls is not None:
            try:
                call = self.calls.get(call_id)
            except NotFound:
                call = None
        if call is None or call.status.released:
            raise NotFound(CALL_NOT_FOUND)
        return call

    def _end(self, call_id: str) -> bool:
        injection = self._injections.pop(call_id, None)
        if injection is None:
            return False
        injection.sink.stop()
        injection.restore()
        self.log.info("call {call_id}: stream {name} no longer injected",
                      call_id=call_id, name=injection.stream_name)
        return True

    @safely
    def call_status_changed(self, call, info) -> None:
        """
        A call's bridge may have changed (pause the new one); an ended call ends its injection.
        """
        injection = self._injections.get(call.call_id)
        if injection is None:
            return
        if call.status.released:
            self._end(call.call_id)
        else:
            injection.bridge_changed(call.bridge)

    def call_transfer_changed(self, call, status) -> None:
        pass

    def call_dtmf_received(self, call, digit, method) -> None:
        pass
