# -*- test-case-name: tests.test_interfaces -*-
"""
Every zope.interface contract of wcs-twisted, in one place.

Layers meet only through these: the call layer sees a signalling connection as an
L{IClientConnection}, the operations endpoints see listeners as L{IListener}, and so on.  Each
production implementation and each test fake is checked with C{verifyObject} in
tests/test_interfaces.py.
"""

from zope.interface import Attribute, Interface


class IClientConnection(Interface):
    """
    One client's signalling channel (a WCS WebSocket), as the layers above the front-end see it.
    """

    peer = Attribute("Text naming the remote end, e.g. '127.0.0.1:53211', for logs and sessionId.")

    def send_message(name, data):
        """
        Send one WCS message.

        @param name: the message name, e.g. C{"getUserData"}.
        @type name: L{str}
        @param data: the positional C{data} array; never L{None} (the SDK indexes it).
        @type data: L{list}
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

    def local_address(transport):
        """
        The C{(host, port)} that peers reach us at over C{transport}, for Via and Contact.
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
        the offer's own first supported codec.

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

    def create_session(kind):
        """
        A new, unconnected media session of C{kind} ("webrtc" or "rtp") with ports reserved.

        @raise MediaError: "No available ports" (the port pool is exhausted).
        """

    def bridge(a, b):
        """
        Join two negotiated sessions; returns an IMediaBridge.
        """
