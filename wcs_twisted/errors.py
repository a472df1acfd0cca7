# -*- test-case-name: tests.test_interfaces -*-
"""
Errors that cross layer boundaries through the interfaces of wcs_twisted.interfaces.

The media layer raises L{MediaError}; the call layer, which may not import media, catches it
here and reports its C{info} (a WCS status info string) to the client.
"""


class MediaError(Exception):
    """
    A media session cannot do what was asked; C{info} is the WCS text, e.g. "No common codecs".
    """

    def __init__(self, info: str) -> None:
        super().__init__(info)
        self.info = info
