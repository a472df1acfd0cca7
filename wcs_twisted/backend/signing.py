# -*- test-case-name: tests.backend.test_hooks -*-
"""
How a hook request proves where it comes from: its headers, signed with the app's secret.

The formats (HMAC-SHA256 over timestamp, method and body by default; WCS's C{Authorization: WCS
<hmac-md5>} for compatibility; HTTP Basic when a username is set) are specified in
docs/rest-hooks.md, so a backend can check them without reading this code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from wcs_twisted.backend.rules import HookApp

SIGNATURE_HEADER = "X-WCS-Signature"
TIMESTAMP_HEADER = "X-WCS-Timestamp"
USER_AGENT = "wcs-twisted"


def hmac_sha256_signature(secret: bytes, timestamp: str, method: str, body: bytes) -> str:
    """
    The C{X-WCS-Signature} value: C{sha256=} and the hex HMAC-SHA256, keyed with the app's
    secret, of C{<timestamp>.<method>.<body>} (timestamp as sent in C{X-WCS-Timestamp}, method
    as in the URL, body the exact bytes sent).
    """
    message = timestamp.encode("ascii") + b"." + method.encode("ascii") + b"." + body
    return "sha256=" + hmac.new(secret, message, hashlib.sha256).hexdigest()


def wcs_md5_authorization(secret: bytes, body: bytes) -> str:
    """
    The C{Authorization} value of the WCS compatibility form: C{WCS } and the lower-case hex
    HMAC-MD5, keyed with the app's secret, of the exact body bytes.
    """
    return "WCS " + hmac.new(secret, body, hashlib.md5).hexdigest()


def basic_authorization(username: str, password: str) -> str:
    """
    An HTTP Basic C{Authorization} value (RFC 7617, UTF-8).
    """
    token = base64.b64encode(f"{username}:{password}".encode("utf-8")).decode("ascii")
    return f"Basic {token}"


def request_headers(app: HookApp, method: str, payload: bytes, signature: str,
                    now: float) -> dict[str, list[str]]:
    """
    The headers of one hook POST of C{payload} to C{method}.

    @param signature: C{rest_hook_signature}: "wcs-md5", or the default HMAC-SHA256 form.
    @param now: the clock's seconds, for C{X-WCS-Timestamp}.
    """
    headers = {
        "Content-Type": ["application/json"],
        "Accept": ["application/json"],
        "User-Agent": [USER_AGENT],
    }
    if app.secret is not None:
        if signature == "wcs-md5":
            headers["Authorization"] = [wcs_md5_authorization(app.secret, payload)]
        else:
            timestamp = str(int(now))
            headers[TIMESTAMP_HEADER] = [timestamp]
            headers[SIGNATURE_HEADER] = [
                hmac_sha256_signature(app.secret, timestamp, method, payload)]
    if app.username is not None:
        headers["Authorization"] = [basic_authorization(app.username, app.password)]
    return headers
