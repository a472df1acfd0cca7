# -*- test-case-name: tests.gateway.test_call -*-
"""
The call-control vocabulary shared by both legs and both front-ends: WCS call statuses, their
info texts, and how SIP outcomes map onto them (spec sections 6.1 and 6.2).  Which message
carries a status on the WebSocket is the front-end's business (L{wcs_twisted.signalling.messages}).
"""

from __future__ import annotations

import enum


class CallStatus(enum.Enum):
    """
    WCS CALL_STATUS strings (NEW and PENDING are client-local, PENDING is our first state).
    """

    PENDING = "PENDING"
    TRYING = "TRYING"
    RING = "RING"
    RING_MEDIA = "RING_MEDIA"
    SESSION_PROGRESS = "SESSION_PROGRESS"
    ESTABLISHED = "ESTABLISHED"
    HOLD = "HOLD"
    BUSY = "BUSY"
    FINISH = "FINISH"
    FAILED = "FAILED"

    @property
    def released(self) -> bool:
        """
        Whether the SDK releases the call on this status (FINISH, FAILED, BUSY).
        """
        return self in RELEASED


RELEASED = frozenset({CallStatus.FINISH, CallStatus.FAILED, CallStatus.BUSY})
#: Statuses of a call not answered yet: the ring timeout runs while the call is in one.
UNANSWERED = frozenset({CallStatus.PENDING, CallStatus.TRYING, CallStatus.RING,
                        CallStatus.RING_MEDIA, CallStatus.SESSION_PROGRESS})

# CALL_STATUS_INFO texts (spec 6.1).
NORMAL_CLEARING = "Normal call clearing"
FAILED_BY_RTP_ACTIVITY = "Failed by RTP activity"
NO_COMMON_CODECS = "No common codecs"
FAILED_BY_REQUEST_TIMEOUT = "Failed by request timeout"
FAILED_BY_ERROR = "Failed by error"
FAILED_BY_SESSION_CREATION = "Failed by session creation"
#: Ours, in WCS's "Failed by ..." style: nobody answered within the ring timeout.
FAILED_BY_RING_TIMEOUT = "Failed by ring timeout"

#: SIP final statuses that mean "busy" (spec 6.2: 486, 600).
BUSY_STATUSES = frozenset({486, 600})


def status_for_failure(sip_status: int, cancelled_by_us: bool) -> tuple[CallStatus, str]:
    """
    The WCS status and info for an INVITE that ended without a call.
    """
    if sip_status == 487 and cancelled_by_us:
        return CallStatus.FINISH, NORMAL_CLEARING
    if sip_status in BUSY_STATUSES:
        return CallStatus.BUSY, "Busy"
    if sip_status == 408:
        return CallStatus.FAILED, FAILED_BY_REQUEST_TIMEOUT
    if sip_status == 488:
        return CallStatus.FAILED, NO_COMMON_CODECS
    return CallStatus.FAILED, f"SIP {sip_status}"


def status_for_provisional(sip_status: int, has_sdp: bool) -> CallStatus:
    """
    180 -> RING, 180 with SDP -> RING_MEDIA, 183 -> SESSION_PROGRESS (spec 6.2).
    """
    if sip_status == 183:
        return CallStatus.SESSION_PROGRESS
    return CallStatus.RING_MEDIA if has_sdp else CallStatus.RING


class TransferStatus(enum.Enum):
    """
    notifyTransferEvent statuses (spec 5.4).
    """

    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    TRYING = "TRYING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


def transfer_status_for_sipfrag(body: bytes) -> TransferStatus | None:
    """
    RFC 3515 NOTIFY body "SIP/2.0 200 OK" -> the transfer status it reports.
    """
    first = body.split(b"\n", 1)[0].strip()
    parts = first.split()
    if len(parts) < 2 or not parts[0].upper().startswith(b"SIP/") or not parts[1].isdigit():
        return None
    status = int(parts[1])
    if status < 200:
        return TransferStatus.TRYING
    if status < 300:
        return TransferStatus.COMPLETED
    return TransferStatus.FAILED
