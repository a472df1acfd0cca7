# -*- test-case-name: tests.test_interfaces -*-
"""
Every zope.interface contract of wcs-twisted, in one place.

(Over 600 lines on purpose: the contracts between layers are read together, and one file keeps
them from drifting into the packages they are meant to keep apart.)

Layers meet only through these: the call layer sees a signalling connection as an
L{IClientConnection}, the operations endpoints see listeners as L{IListener}, and so on.  Each
production implementation and each test fake is checked with C{verifyObject} in
tests/test_interfaces.py.
"""

from zope.interface import Attribute, Interface


class IClientConnection(Interface):
    """
    One client's signalling channel, as the gateway sees it: what it tells the client, in typed
    values.  The front-end (L{wcs_twisted.signalling}) turns each call into its wire message, so
    the gateway never names a WCS message, a field order or a wire status.

    C{call} arguments are the gateway's call objects and C{stream} arguments its stream objects:
    both have C{to_wcs()}, the WCS object (the same dict REST shows).
    """

    peer = Attribute("Text naming the remote end, e.g. '127.0.0.1:53211', for logs and sessionId.")

    def call_status(call, info):
        """
        The call reached C{call.status} (a L{wcs_twisted.gateway.call_events.CallStatus}); also
        sent again, unchanged, to answer a hold/unhold that changed nothing.

        @param info: the status info text (e.g. "Normal call clearing"), or None.
        """

    def incoming_call(call):
        """
        A SIP call arrived for this client (after its L{remote_sdp} offer).
        """

    def remote_sdp(media_id, sdp, is_answer):
        """
        The server's SDP for a call (C{media_id} is its callId) or a stream (its mediaSessionId).

        @param is_answer: True for an answer to the client's offer, False for a server offer.
        """

    def stream_status(stream):
        """
        A stream of this client changed status (C{stream.to_wcs()["status"]}).
        """

    def dtmf(call_id, digit, method):
        """
        A DTMF digit arrived from the SIP side; C{method} is "RFC2833" or "INFO".
        """

    def transfer_status(call, status, sip_status):
        """
        A transfer of C{call} moved on.

        @param status: a L{wcs_twisted.gateway.call_events.TransferStatus}.
        @param sip_status: the SIP status that refused the REFER, or None.
        """

    def registration_status(state, info):
        """
        The client's SIP registration (sipRegisterRequired) changed.

        @param state: a L{wcs_twisted.ua.registration.RegistrationState}: REGISTERED, or a
            failure (FAILED, AUTHENTICATION_FAIL).
        @param info: why it failed, or None.
        """

    def close(code, reason):
        """
        Close the channel cleanly, telling the client why.

        @param code: WebSocket close code: 1000, or 3000-4999 for application reasons.
        @param reason: short human-readable text.
        """


class IListener(Interface):
    """
    A network listener whose readiness is reported by /health.
    """

    name = Attribute("Short name, e.g. 'ws', 'http', 'sip-udp'.")
    ready = Attribute("True while the listener is bound and accepting.")
    address = Attribute("Text of the bound address once ready, else None.")
    errors = Attribute("Count of errors seen on this listener (bind failures, bad input).")


class ISIPTransport(Interface):
    """
    The SIP transaction and transport layers as the UA layer uses them (RFC 3261 17, 18).

    Destinations are L{wcs_twisted.sip.address.SIPAddress}-like triples
    C{(transport, host, port)}, with transport "udp", "tcp" or "tls".
    """

    def send_request(request, destination):
        """
        Start a client transaction; the request already carries its top Via and branch.

        @return: the transaction key; responses, timeouts and transport errors come back as
            events to the transaction user.
        """

    def respond(transaction_key, response):
        """
        Answer a request through its server transaction.
        """

    def cancel(invite_key):
        """
        Cancel an INVITE client transaction (RFC 3261 9.1).
        """

    def send_message(message, destination):
        """
        Send outside any transaction (ACK for 2xx, stateless replies).
        """

    def local_address(transport, toward=None):
        """
        The C{(host, port)} that peers reach us at over C{transport}, for Via and Contact;
        C{toward} (the peer's IP, None when unknown or a name) picks the public or the local
        address behind NAT (wcs_twisted.addresses).
        """

    def generate_branch():
        """
        A new RFC 3261 branch (z9hG4bK + randomness from the stack's random source).
        """


class ITransactionUser(Interface):
    """
    What sits on top of the transaction layer: receives its events (RFC 3261 17 "TU").
    """

    def event_received(event):
        """
        One event of L{wcs_twisted.sip.events} (RequestReceived, ResponseReceived,
        AckReceived, CancelReceived, TransactionTimedOut, TransportErrorOccurred, ...).
        """


class IClientTransactionOwner(Interface):
    """
    Whoever sent a request through L{UserAgentCore.send_request}.
    """

    def response_received(response):
        """
        A provisional or final response (2xx retransmissions included, RFC 6026).
        """

    def transaction_failed(reason):
        """
        The transaction timed out ("timeout") or the transport failed ("transport").
        """


class IRequestRouter(Interface):
    """
    Something that may take out-of-dialog requests: registrar, proxy, call layer.
    """

    def accept_request(event):
        """
        Take the request in a L{RequestReceived} event and answer it (now or later).

        @return: True if taken, False to let the next router try.
        """


class IDialogUsage(Interface):
    """
    A dialog's user (an INVITE session, a subscription) receiving in-dialog requests.
    """

    def request_received(event):
        """
        An in-dialog request (RequestReceived) for this dialog.
        """

    def ack_received(event):
        """
        The ACK for a 2xx this usage sent (AckReceived).
        """


class IInviteSessionObserver(Interface):
    """
    The call layer's view of one SIP call leg (L{wcs_twisted.ua.invite_session.InviteSession}).
    """

    def provisional(session, response):
        """
        A 1xx (not 100) to our INVITE: ringing, or session progress with early media SDP.
        """

    def answered(session, response):
        """
        Our INVITE got its 2xx; the ACK is sent and the dialog confirmed.
        """

    def confirmed(session):
        """
        The ACK for the 2xx we sent arrived (incoming calls).
        """

    def failed(session, status, reason, response):
        """
        Our INVITE ended without a call: a final non-2xx, a timeout (408), a transport error.
        """

    def terminated(session, reason, by_remote):
        """
        The call is over: BYE either way, CANCEL received, or an in-dialog fatal error.
        """

    def offer_received(session, offer):
        """
        A re-INVITE from the peer (offer is the SDP bytes, or None for an offerless one).

        @return: the answer SDP bytes, or None to answer with our current SDP.
        @raise wcs_twisted.sip.errors.RemoteProtocolError: to refuse it (e.g. 488).
        """

    def info_received(session, request):
        """
        An INFO (DTMF relay, picture_fast_update); returns the status to answer (default 200).
        """

    def refer_received(session, request, refer_to):
        """
        A REFER (RFC 3515); returns the status to answer (default 202).
        """

    def notify_received(session, request):
        """
        A NOTIFY in the dialog (REFER progress, RFC 3515 sipfrag).
        """

    def message_received(session, request):
        """
        A MESSAGE in the dialog.
        """


class IMediaSessionObserver(Interface):
    """
    Who owns a media session (a call) and hears what happens to its media.
    """

    def media_connected(session):
        """
        Media flows: ICE + DTLS done (WebRTC) or the first RTP packet arrived (RTP).
        """

    def media_dtmf(session, digit):
        """
        A DTMF digit arrived on this leg as RFC 4733 telephone-event (reported once per digit).
        """

    def media_inactive(session):
        """
        No RTP for the configured time (WCS "Failed by RTP activity").
        """

    def media_failed(session, reason):
        """
        The leg cannot carry media any more (ICE consent lost, DTLS failure); C{reason} is one of
        the WCS info strings, e.g. "Failed by ICE error", "Failed by DTLS error".
        """


class IMediaSession(Interface):
    """
    One leg's media, SDP in and out.  Implementations live in wcs_twisted.media; the call layer
    only sees this.  SDP is text; codec names are "name/clock_rate[/channels]" as in rtpmap
    (e.g. "opus/48000/2", "PCMU/8000").  Failures raise C{wcs_twisted.errors.MediaError}
    whose C{info} is a WCS string such as "No common codecs"; the call layer turns it into FAILED
    with that info.
    """

    kind = Attribute("'webrtc' (browser: ICE-lite, DTLS-SRTP) or 'rtp' (SIP peer: RTP/AVP).")
    observer = Attribute("The IMediaSessionObserver told about media events (set by the owner).")
    signalling_source = Attribute(
        "The IP address the peer's SIP comes from, or None; set by the call layer before the "
        "peer's SDP so that an RTP leg under NAT accepts media from there (docs/security.md).")
    audio_codec = Attribute("Negotiated audio codec name once offer/answer is done, else None.")
    video_codec = Attribute("Negotiated video codec name, or None (no video).")
    local_sdp = Attribute("The last SDP we produced, or None.")

    def offered_codecs(sdp):
        """
        The audio and video codec names an offer (or answer) lists, in its order of preference,
        that this kind of leg can carry.

        @return: (audio names, video names)
        """

    def create_offer(audio_codecs, video_codecs, direction):
        """
        Our offer, listing C{audio_codecs}/C{video_codecs} first (from the other leg, so both legs
        can settle on one codec and relay), then whatever else we support.  Empty video list means
        no m=video.  C{direction} is "sendrecv", "sendonly", "recvonly" or "inactive" (hold).
        A later call makes a re-offer (same ports, version + 1).
        """

    def create_answer(offer, prefer_audio, prefer_video, direction):
        """
        Answer a remote offer, choosing the first codec of C{prefer_*} the offer allows, else
        the offer's own first supported codec.  C{prefer_video=None} answers an offered video
        stream C{inactive}: nothing flows on it (a player of a stream that has no video).

        @raise MediaError: "No common codecs" (nothing the offer lists can be carried).
        """

    def set_remote_answer(answer):
        """
        Apply the peer's answer to our offer.

        @raise MediaError: "No common codecs" or a malformed answer.
        """

    def set_direction(direction):
        """
        Pause or resume sending/receiving without new SDP (hold on the other leg).
        """

    def send_dtmf(digit, duration_ms):
        """
        Send one DTMF digit as RFC 4733 events on this leg (no-op with a log if none negotiated).
        """

    def close():
        """
        Stop media and release every port; returns a Deferred.  Closing twice is harmless.
        """


class IMediaBridge(Interface):
    """
    Two media sessions joined: payloads relayed when the codecs match, transcoded otherwise.
    """

    mode = Attribute("'relay' or 'transcode' (per direction it may differ; 'transcode' if any).")
    on_keyframe_request = Attribute(
        "Callable(leg) set by the owner: the other leg asked for a key frame that C{leg}'s peer "
        "must produce (the call sends SIP INFO picture_fast_update for the RTP leg).")

    def request_keyframe(session):
        """
        Ask C{session}'s peer for a key frame (RTCP PLI), e.g. after a SIP INFO
        picture_fast_update arrived on the other leg.
        """

    def hold(held):
        """
        While C{held}, forward no media either way (the SIP side is on hold).
        """

    def close():
        """
        Unjoin the sessions (the sessions themselves are closed by their owner).
        """


class IMediaFactory(Interface):
    """
    What the call layer uses to make media: sessions and bridges.
    """

    def create_session(kind, peer=None):
        """
        A new, unconnected media session of C{kind} ("webrtc" or "rtp") with ports reserved;
        its SDP carries the address C{peer} (the far end's IP, None if unknown) can reach.

        @raise MediaError: "No available ports" (the port pool is exhausted).
        """

    def bridge(a, b):
        """
        Join two negotiated sessions; returns an IMediaBridge.
        """


class IEventHooks(Interface):
    """
    The HTTP calls the server makes to an application's backend (WCS REST hooks, spec section 12).

    Each appKey may have a backend; an appKey without one (and no defaultApp backend) gets no
    calls, and every method below then answers at once with what it was given.  A slow or dead
    backend never blocks the reactor: every call is asynchronous, bounded in time and in
    concurrency.
    """

    def connect(fields):
        """
        Ask the backend whether a client's C{connection} may open (method C{connect}).

        @param fields: the connection object, with C{nodeId}, C{appKey} and C{sessionId}.
        @return: a Deferred firing with the connection fields to use (the backend may have
            overwritten some and added C{restClientConfig}), or failing with
            L{wcs_twisted.backend.hooks.HookRefused}, a C{DomainError} whose C{info} is the
            backend's reason (or, when the backend is down and the policy refuses,
            L{wcs_twisted.backend.hooks.HookUnavailable}).
        """

    def invoke(app_key, method, body, client_config=None):
        """
        Tell the backend about a client action before it is done (direct invocation: call,
        answer, hangup, hold, unhold, transfer, sendDtmf).

        @param client_config: the session's C{restClientConfig} from C{connect}, or None.
        @return: a Deferred firing with the body to act on.  With C{restOnError} LOG and
            C{restPolicy} NOTIFY (the defaults) it has already fired with C{body}: the action
            never waits.  It fails with C{HookRefused} only when C{restOnError} is FAIL.
        """

    def event(app_key, method, body, client_config=None):
        """
        Report a status change (ConnectionStatusEvent, RegistrationStatusEvent, CallStatusEvent,
        TransferStatusEvent); fire and forget, retried a bounded number of times.

        @return: a Deferred firing with True once delivered, False if given up; it never fails.
        """

    def app_for(app_key, method):
        """
        The backend that hears C{method} for C{app_key} (its own, else the default app's), or
        None when no backend does; signalling asks it whether a C{connect} hook vouched for a
        session (docs/security.md).
        """

    def close():
        """
        Stop: cancel pending retries and requests in flight.  Returns a Deferred that fires once
        they have all stopped.
        """


# --- modules and streams (docs/plugins.md) ------------------------------------------------------


class ICallObserver(Interface):
    """
    Something told about every call's progress (the observers of L{wcs_twisted.gateway.call_table}).

    C{call} is the call layer's object: read C{call.call_id} and C{call.to_wcs()} (the WCS call
    object, the same dict REST C{/call/find} returns) and treat the rest as private.
    """

    def call_status_changed(call, info):
        """
        The call reached a new WCS status (C{call.to_wcs()["status"]}: TRYING, RING, ESTABLISHED,
        HOLD, FINISH, FAILED, BUSY...).

        @param info: the WCS info text that went with it (e.g. "Normal call clearing"), or None.
        """

    def call_transfer_changed(call, status):
        """
        A transfer (REFER) of the call moved on; C{status.value} is the WCS transfer status.
        """

    def call_dtmf_received(call, digit, method):
        """
        A DTMF digit arrived from the SIP side; C{method} is "RFC2833" or "INFO".
        """


class ICallAdmission(Interface):
    """
    A call observer that also decides (the REST hooks' incoming invocations): the call table
    asks every observer providing this before it goes on, and waits for all of them.
    """

    def call_offered(call):
        """
        An incoming SIP call for a session, before the browser hears of it (OnCallEvent).

        @return: a Deferred firing with a dict of call-object fields to change (caller,
            visibleName, custom), or failing with a DomainError to turn the caller away.
        """

    def transfer_requested(call, target):
        """
        The SIP peer REFERs C{call} to C{target} (OnTransferEvent).

        @return: a Deferred firing once the transfer may go on, or failing with a DomainError
            to refuse the REFER.
        """


class IWcsModule(Interface):
    """
    A pluggable server module (recording, RTMP republishing, an audit log, ...).

    A drop-in file in the C{wcs_plugins} package, or in a folder named by C{plugin_dirs}, creates
    one object at module level that provides L{twisted.plugin.IPlugin} and this interface; the
    server finds it with C{twisted.plugin.getPlugins}.  The module reaches the rest of the server
    only through the L{IModuleContext} it is started with, and imports from wcs-twisted only this
    file, L{wcs_twisted.errors} and the public toolkit L{wcs_twisted.toolkit} (depacketizers, AAC,
    Matroska writing, stream-sink helpers, config key types); the layering test holds it to that.

    Optionally it has C{config_keys}: a tuple of L{wcs_twisted.toolkit.config.ModuleKey} (name,
    type, default, description) read from the server's configuration file with the core keys,
    checked when the file is loaded, read with L{IModuleContext.setting}.
    """

    name = Attribute(
        "Short unique name (letters, digits, '_'), used in logs and in modules_disabled.")

    def start(context):
        """
        Start the module.  Called once, at server start, in name order.

        @param context: what the module may use (L{IModuleContext}).
        @return: None, or a L{Deferred} (or coroutine) that fires once started.  Raising, or a
            failing Deferred, gets the module logged with its name and skipped; the server keeps
            running and C{stop} is not called.
        """

    def stop():
        """
        Stop and release everything (files, sinks, stream observers, connections).  Called once
        at shutdown, in reverse start order, if C{start} did not fail (also while a slow start is
        still pending: its Deferred is cancelled first).

        @return: None, or a L{Deferred} (or coroutine); a stop that takes too long is logged and
            abandoned.
        """


class IModuleContext(Interface):
    """
    Everything an L{IWcsModule} may reach; given to C{start}, one context per module.
    """

    name = Attribute("The name of the module this context belongs to.")
    settings = Attribute(
        "The server's L{wcs_twisted.config.Settings}: frozen, so read-only by construction.")
    clock = Attribute("An IReactorTime for timers and C{seconds()}; a task.Clock in tests.")
    reactor = Attribute(
        "The reactor, for modules that open connections (IReactorTCP...).  Never import "
        "twisted.internet.reactor in a module.")
    streams = Attribute("The server's L{IStreamRegistry}: named streams to publish or play.")
    log = Attribute(
        "A twisted.logger.Logger whose namespace names the module (wcs_plugins.<name>).")

    services = Attribute(
        "Shared dict of what modules provide to the front-ends and each other, by name (see "
        "provide).")

    def setting(name):
        """
        The typed value of one of the module's own C{config_keys}: the file's, else its default.

        @raise KeyError: the module declares no such key.
        """

    def provide(name, service):
        """
        Offer C{service} under C{name} (e.g. "recorder", "rtmp") until the module stops.
        """

    def route(methods, path, handler, fields=None, summary="", answers=None):
        """
        Serve a REST method at /rest-api/C{path} until the module stops, with the auth, CORS,
        JSON errors and OpenAPI listing of the core methods.

        @param methods: "POST", or a tuple such as ("GET", "POST").
        @param handler: C{handler(body)} gets the request's JSON object and returns the JSON
            document to answer with 200 (None: an empty 200); a
            L{wcs_twisted.errors.DomainError} it raises becomes 400/404/409/500.
        @param fields: C{{name: (json type, description)}}, the only fields a body may hold
            (others are a 400); None lets the handler check them.
        @param summary: one line, and C{answers} C{{"200": "...", "404": "..."}}, for OpenAPI.
        @raise ValueError: the path is the server's own or another module's.
        """

    def serve_directory(path, folder):
        """
        Serve the files of C{folder} (made if missing) on the HTTP site under C{path}, e.g.
        C{"/client/records"}, until the module stops: byte ranges are honoured (a <video>
        element seeks with them), folder listings are not given.

        @raise ValueError: the path is not absolute, or is served already.
        """

    def extend_call_startup(hook, fields=()):
        """
        Call C{hook(call, body)} for every call REST /call/startup starts (C{body}: its JSON
        object) until the module stops; a L{wcs_twisted.errors.DomainError} it raises hangs the
        call up and is the REST answer.

        @param fields: the /call/startup fields the hook serves (e.g. C{("rtmpUrl",)}); a
            request that sets one while no running module serves it is refused with 404 before
            any call starts, instead of the field being silently ignored.
        """

    def add_call_observer(observer):
        """
        Tell C{observer} about every call from now on, as an L{ICallObserver}; it may implement
        only the methods it needs.  Its exceptions are logged with the module's name and never
        reach the call layer.  Observers still registered when the module stops are removed.
        """

    def remove_call_observer(observer):
        """
        Stop telling C{observer} about calls; an observer that is not registered is ignored.
        """


class IStreamSource(Interface):
    """
    What feeds a named stream: a SIP call's media, a browser's WebRTC publish, a media file.

    The source's owner publishes it (L{IStreamRegistry.publish}) and pushes each encoded packet
    into the L{IStream} it gets back (C{stream.packet_received(...)}); the stream fans the packets
    out to its sinks.
    """

    audio_codec = Attribute(
        "The audio codec sent, as in rtpmap ('opus/48000/2', 'PCMU/8000'), or None.")
    video_codec = Attribute("The video codec sent ('H264/90000', 'VP8/90000'), or None.")

    def request_keyframe():
        """
        Ask the publisher for a video keyframe soon (RTCP PLI/FIR, SIP INFO
        picture_fast_update).  The stream calls this when a video sink attaches or asks, at most
        about every quarter second; a source without video ignores it.  Must not raise.
        """

    def stream_ended(reason):
        """
        The stream ended, whoever ended it (the owner, REST /stream/terminate, shutdown): stop
        feeding it.  Called once, after the sinks were told.

        @param reason: the WCS info text, e.g. "Stopped by publisher stop".
        """


class IStreamEventRecipient(Interface):
    """
    A client connection that can hear a published stream's events (C{sendStreamEvent} relayed
    to its players); a connection without a client (a detached keep-alive session) does not
    provide it, and the events are dropped.
    """

    def stream_event(media_session_id, event_type, payload):
        """
        An event of the stream the client plays as C{media_session_id}: C{event_type} is the
        WCS type text (C{data}, C{audioMuted}...), C{payload} what the publisher sent with it.
        """


class IStreamSink(Interface):
    """
    A consumer of a named stream: a WebRTC player, the recorder, an RTMP pusher, injection into
    a call.

    Sinks receive ENCODED packets, never decoded frames (relay first: a player that accepts the
    source codec forwards the payload as it is).  A sink that needs samples or another codec
    decodes or transcodes itself, and can compare C{codec_name} per packet to notice a change.
    """

    kinds = Attribute(
        "The media the sink takes: a collection of 'audio' and/or 'video', read once at attach. "
        "A sink taking 'video' makes the stream ask its source for a keyframe.")

    def packet_received(kind, payload, codec_name, timestamp, marker):
        """
        One encoded media packet; runs for every packet, so it must be quick and never block.

        @param kind: "audio" or "video" (only the kinds the sink takes).
        @param payload: the RTP payload (no RTP header), L{bytes}; shared by every sink, so
            never modified.
        @param codec_name: as in rtpmap, e.g. "opus/48000/2", "H264/90000".
        @param timestamp: the RTP timestamp, in units of the codec's clock rate, wrapping at
            2**32 (RFC 3550 5.1).
        @param marker: the RTP marker bit: last packet of a video frame, or first packet of a
            talkspurt (RFC 3551 4.1).
        """

    def stream_ended(reason):
        """
        The stream's source ended; the sink is already detached and gets no more packets.  A
        player reports STOPPED (or FAILED) with C{reason} as the info to its client.

        @param reason: the WCS info text, e.g. "Stopped by publisher stop",
            "Stopped by rest /terminate", "Failed by error" (this sink raised).
        """


class IStream(Interface):
    """
    One published stream, as L{IStreamRegistry.publish} returns it: one source, many sinks.
    """

    name = Attribute("The stream name (unique among published streams).")
    source = Attribute("The L{IStreamSource} feeding it.")
    sinks = Attribute("A tuple of the attached L{IStreamSink}s, in attach order.")
    properties = Attribute(
        "Dict of extra WCS stream-object fields given at publish (mediaSessionId, sessionId...).")
    created = Attribute("Clock time (seconds) of publication.")
    ended = Attribute("None while running; the end reason (WCS info text) once ended.")

    def packet_received(kind, payload, codec_name, timestamp, marker):
        """
        Fan one encoded packet out to every sink taking C{kind} (called by the source's owner;
        the arguments are as in L{IStreamSink.packet_received}).  A sink that raises is
        detached and told "Failed by error"; the others still get the packet.
        """

    def attach(sink):
        """
        Add a sink; it gets the packets that arrive from now on.  A sink taking video makes the
        stream ask the source for a keyframe.  Attaching an attached sink does nothing.

        @raise wcs_twisted.errors.MediaError: "Stream not found" once the stream has ended.
        """

    def detach(sink):
        """
        Remove a sink (no C{stream_ended} call); it gets no further packet, even one being fanned
        out right now.  Detaching a sink that is not attached does nothing.
        """

    def request_keyframe():
        """
        Ask the source for a keyframe (a sink saw loss); requests closer together than a quarter
        second are merged into one.
        """

    def end(reason):
        """
        End the stream: it leaves the registry, every sink and then the source get
        C{stream_ended(reason)}.  Ending an ended stream does nothing.
        """

    def describe():
        """
        The stream as a WCS stream object dict: C{properties} plus name, audioCodec, videoCodec
        and createDate (milliseconds); what L{IStreamRegistry.find} filters match.
        """


class IClusterDirectory(Interface):
    """
    The other nodes of a cluster, as the REST front-end needs them: what they hold and who
    carries out a request for an object one of them owns (the cluster module provides it as
    the service C{"cluster"}; a server alone has none and answers from its own tables).
    """

    def remote_calls(filters):
        """
        @return: a Deferred firing with the WCS call objects of the other living nodes that
            match every field of C{filters} (an empty filter matches all).
        """

    def remote_streams(filters):
        """
        @return: a Deferred firing with the WCS stream objects published on the other living
            nodes that match every field of C{filters}.
        """

    def remote_connections(filters):
        """
        @return: a Deferred firing with the connection objects (/connection/find) of the
            sessions of the other living nodes that match every field of C{filters}.
        """

    def relay(method, path, body, headers):
        """
        Carry out a REST request that found nothing here on the node owning the call, stream
        or session its JSON C{body} names (callId, streamName/name, mediaSessionId, sessionId).

        @param path: below /rest-api/ (C{"/call/terminate"}).
        @param headers: C{{name: value}} to pass on (Authorization).
        @return: a Deferred firing with C{(status, content type, body bytes)} of the owner's
            answer, or None when no other node owns it.
        """


class IStreamObserver(Interface):
    """
    Told when streams come and go (e.g. a recording module attaching to every call stream).
    """

    def stream_published(stream):
        """
        A stream (L{IStream}) was published.
        """

    def stream_unpublished(stream, reason):
        """
        A stream ended with the WCS info text C{reason}; its sinks were already told.
        """


class IStreamRegistry(Interface):
    """
    The server's named streams (media/streams.py): REST /stream/*, players, modules.
    """

    def publish(name, source, properties=None):
        """
        Publish C{source} under C{name}.

        @param properties: extra WCS stream-object fields (mediaSessionId, sessionId, appKey...).
        @return: the new L{IStream}; the source's owner feeds packets into it.
        @raise wcs_twisted.errors.MediaError: "Stream name is already in use".
        """

    def unpublish(name, reason):
        """
        End the stream called C{name} (L{IStream.end}).  Owners that hold the stream should call
        C{stream.end} instead, so a stale name never ends a newer stream of the same name.

        @raise wcs_twisted.errors.MediaError: "Stream not found".
        """

    def get(name):
        """
        The L{IStream} published as C{name}, or None.
        """

    def find(filters):
        """
        The streams whose C{describe()} has every key of the mapping C{filters} with an equal
        value, in publication order; empty filters match every stream.
        """

    def attach(name, sink):
        """
        Attach C{sink} to the stream called C{name} (L{IStream.attach}).

        @return: the L{IStream}, so the sink can later C{request_keyframe} or C{detach}.
        @raise wcs_twisted.errors.MediaError: "Stream not found".
        """

    def detach(name, sink):
        """
        Detach C{sink} from the stream called C{name}; unknown names and sinks are ignored.
        """

    def add_observer(observer):
        """
        Tell an L{IStreamObserver} about streams published and ended from now on; its
        exceptions are logged and never reach the publisher.
        """

    def remove_observer(observer):
        """
        Stop telling C{observer}; one that is not registered is ignored.
        """

    def resolve(name):
        """
        The stream called C{name} here, else one a resolver makes for it (a cluster node relays
        another node's stream: L{IStreamResolver}), else None.  Players use this; a publisher's
        name check uses L{get}.
        """

    def taken(name):
        """
        Whether a new publisher may not use C{name}: a stream of that name is published here,
        or a name check says it is published elsewhere (another node of the cluster).
        """

    def add_name_check(check):
        """
        Ask C{check(name) -> bool} too in L{taken} (the cluster module: names other nodes
        publish); it must not raise.
        """

    def remove_name_check(check):
        """
        Stop asking C{check}.
        """

    def add_resolver(resolver):
        """
        Ask C{resolver} (L{IStreamResolver}) for names nobody publishes here.
        """

    def remove_resolver(resolver):
        """
        Stop asking C{resolver}.
        """


class IStreamResolver(Interface):
    """
    Makes a stream that is not published here playable (the cluster module: a local copy of a
    stream another node publishes).
    """

    def resolve_stream(name):
        """
        @return: an L{IStream} now published here under C{name}, or None.  Must not raise.
        """


# --- media sessions as stream sources and sinks (media/stream_endpoints.py) ------------------------


class IMediaStreamSource(IStreamSource):
    """
    The media a session receives from its peer (a SIP phone's RTP, a publishing browser's SRTP),
    as the source of a named stream.  Made by L{IMediaStreams.stream_source}.
    """

    def start(stream):
        """
        Push every packet of the session's negotiated audio and video codecs into C{stream}
        (the L{IStream} that publishing this source returned), from now until L{stop}.  The
        session's relay to a bridged leg is not disturbed.
        """

    def stop():
        """
        Stop pushing packets; the session goes back to its plain receive path.  Called by
        C{stream_ended}; stopping twice does nothing.
        """


class IMediaStreamSink(IStreamSink):
    """
    A named stream sent out on a session (a WebRTC player): payloads relayed when the stream's
    codec is the one the session negotiated, audio transcoded when not, video dropped when not.
    Made by L{IMediaStreams.stream_sink}.
    """

    def play(stream):
        """
        Attach to C{stream} (an L{IStream}); the peer's keyframe requests (RTCP PLI/FIR) go to it.

        @raise wcs_twisted.errors.MediaError: "Stream not found" if it has ended.
        """

    def stop():
        """
        Detach from the stream (no C{on_ended} call); stopping twice does nothing.
        """


class IMediaStreams(Interface):
    """
    What joins media sessions to named streams; the media factory provides it next to
    L{IMediaFactory}, so the call layer never touches packets.
    """

    def stream_source(session):
        """
        An L{IMediaStreamSource} over a negotiated session of this factory (nothing flows until
        its C{start}).
        """

    def stream_sink(session, on_ended):
        """
        An L{IMediaStreamSink} sending a stream out on a negotiated session of this factory.

        @param on_ended: called with the WCS info text when the stream ends under the sink (its
            source stopped, REST terminate, or "Failed by error" when sending raised), or None.
        """


class IPausableBridge(Interface):
    """
    An L{IMediaBridge} that can stop the audio going into one of its legs, so that something
    else is heard there: a named stream injected into a call (REST /call/inject_stream).
    """

    def pause_audio_to(session, paused):
        """
        While C{paused}, forward no audio (nor telephone events) from the other leg into
        C{session}; video, RTCP and the other direction flow on.  The pause outlasts hold and
        renegotiation; C{paused=False} restores the audio.

        @raise ValueError: C{session} is not a leg of this bridge.
        """
