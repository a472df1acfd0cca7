# -*- test-case-name: tests.test_interfaces -*-
"""
The errors every layer shares, in one place.

L{MediaError} is raised by the media layer and caught by the gateway, which may not import media.
L{DomainError} and its subclasses are what a client caused: the REST layer maps each class to an
HTTP status in one table, the signalling layer turns it into a WCS C{fail} message with C{info};
modules raise them too, so they are part of the public toolkit.
"""


class MediaError(Exception):
    """
    A media session cannot do what was asked; C{info} is the WCS text, e.g. "No common codecs".
    """

    def __init__(self, info: str) -> None:
        super().__init__(info)
        self.info = info


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
