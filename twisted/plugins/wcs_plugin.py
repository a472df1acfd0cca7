"""
The twistd drop-in for C{twistd wcs}: one ServiceMaker that names the tap module, importing nothing
heavy (every C{twistd --help} imports this file).
"""

from twisted.application.service import ServiceMaker

wcs = ServiceMaker(
    "wcs-twisted",
    "wcs_twisted.tap",
    "WebRTC <-> SIP gateway speaking the Flashphoner WCS protocol",
    "wcs",
)
