# -*- test-case-name: tests.ua.test_account -*-
"""
Domain errors of the call layer, raised by the API that the front-ends call.

Each carries what a front-end needs to answer: the REST layer maps the class to an HTTP status in
one place, the signalling layer turns it into a WCS C{fail} message with C{info}.
"""


class DomainError(Exception):
    """
    Base of errors that a client caused and can be told about.
    """

    info = "Failed by error"

    def __init__(self, info: str | None = None) -> None:
        super().__init__(info or self.info)
        if info is not None:
            self.info = info


class InvalidField(DomainError):
    """
    A request field is missing, of the wrong type, or not allowed (HTTP 400).
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        super().__init__(f"{field}: {reason}")


class NotFound(DomainError):
    """
    The call, stream or session named in the request does not exist (HTTP 404).
    """

    info = "Not found"


class Conflict(DomainError):
    """
    The request collides with something that exists, e.g. a callId in use (HTTP 409).
    """

    info = "Already exists"
