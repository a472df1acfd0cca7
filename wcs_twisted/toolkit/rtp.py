"""
RTP packets for modules that move stream packets over the network (the cluster module relays a
stream to another node as plain RTP): build one, read one's header and payload bounds.
"""

from wcs_twisted.media.rtp_packet import RTPHeader, build_rtp, payload_bounds, peek_header

__all__ = ["RTPHeader", "build_rtp", "payload_bounds", "peek_header"]
