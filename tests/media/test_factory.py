"""
Tests for L{wcs_twisted.media.factory}: sessions of both kinds on the
configured addresses and range, bridges, one certificate per process.
"""

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from tests.media.fakes import FakeUDPReactor
from tests.media.test_session import BARESIP
from tests.media.test_webrtc import SERVER_CERT
from wcs_twisted.errors import MediaError
from wcs_twisted.interfaces import IMediaBridge, IMediaFactory, IMediaSession
from wcs_twisted.media.factory import MediaFactory, process_certificate
from wcs_twisted.media.ports import PortPool


class MediaFactoryTests(SynchronousTestCase):
    """
    create_session and bridge.
    """

    def setUp(self):
        self.reactor = FakeUDPReactor()
        self.pool = PortPool(34000, 34005)
        self.factory = MediaFactory(self.reactor, "198.51.100.1", "10.0.0.1", self.pool,
                                    SERVER_CERT, 30)

    def test_interface(self):
        """
        The factory provides IMediaFactory and makes IMediaSessions of the
        asked kind with ports bound on the bind address.
        """
        verifyObject(IMediaFactory, self.factory)
        for kind in ("webrtc", "rtp"):
            session = self.factory.create_session(kind)
            self.addCleanup(session.close)
            verifyObject(IMediaSession, session)
            self.assertEqual(session.kind, kind)
            self.assertEqual(session.local_address[0], "10.0.0.1")
        self.assertEqual(self.pool.in_use, 2)

    def test_public_address_in_sdp(self):
        """
        The SDP names the public address, not the bound one.
        """
        session = self.factory.create_session("rtp")
        self.addCleanup(session.close)
        self.assertIn("c=IN IP4 198.51.100.1", session.create_answer(BARESIP, [], [], "sendrecv"))

    def test_unknown_kind(self):
        """
        An unknown kind is a programming error.
        """
        self.assertRaises(ValueError, self.factory.create_session, "sctp")

    def test_no_available_ports(self):
        """
        When the range is used up create_session raises MediaError("No
        available ports") and holds nothing more.
        """
        sessions = [self.factory.create_session("rtp") for _ in range(3)]
        error = self.assertRaises(MediaError, self.factory.create_session, "webrtc")
        self.assertEqual(error.info, "No available ports")
        for session in sessions:
            self.successResultOf(session.close())
        self.assertEqual(self.pool.in_use, 0)

    def test_bridge(self):
        """
        bridge joins two negotiated sessions into an IMediaBridge; a closed
        session cannot be bridged.
        """
        a = self.factory.create_session("rtp")
        b = self.factory.create_session("rtp")
        for session in (a, b):
            self.addCleanup(session.close)
            session.create_answer(BARESIP, ["PCMU/8000"], [], "sendrecv")
        bridge = self.factory.bridge(a, b)
        verifyObject(IMediaBridge, bridge)
        self.assertEqual(bridge.mode, "relay")
        bridge.close()
        self.successResultOf(a.close())
        self.assertRaises(MediaError, self.factory.bridge, a, b)

    def test_inactivity_timeout_passed_on(self):
        """
        Sessions watch for inactivity with the factory's timeout.
        """
        session = self.factory.create_session("rtp")
        self.addCleanup(session.close)
        events = []

        class Observer:
            def media_inactive(self, s):
                events.append(s)

        session.observer = Observer()
        session.create_answer(BARESIP, ["PCMU/8000"], [], "sendrecv")
        self.reactor.pump([1.0] * 29)
        self.assertEqual(events, [])
        self.reactor.pump([1.0] * 8)
        self.assertEqual(events, [session])

    def test_one_certificate_per_process(self):
        """
        Without a certificate the factory uses the process one, made once.
        """
        first = MediaFactory(self.reactor, "198.51.100.1", "10.0.0.1", self.pool)
        second = MediaFactory(self.reactor, "198.51.100.1", "10.0.0.1", self.pool)
        self.assertIs(first.certificate, second.certificate)
        self.assertIs(first.certificate, process_certificate())
