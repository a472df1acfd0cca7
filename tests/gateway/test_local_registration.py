"""
Tests for L{wcs_twisted.gateway.local_registration}: local-mode sessions registered at a
registrar in front (the built-in L{Registrar} on an in-memory SIP network plays the front).
"""

from twisted.trial.unittest import SynchronousTestCase

from tests.gateway.test_sessions import RecordingConnection
from wcs_twisted.gateway.local_registration import local_registration_factory
from wcs_twisted.gateway.sessions import SessionTable
from wcs_twisted.testing.network import MemoryNetwork, build_memory_stack
from wcs_twisted.ua.location import LocationService
from wcs_twisted.ua.registrar import Registrar


class LocalRegistrationTests(SynchronousTestCase):
    """
    sip_register_local_sessions: the session table registers local-mode sessions in front.
    """

    def setUp(self):
        self.network = MemoryNetwork()
        self.clock = self.network.clock
        _, front = build_memory_stack(self.network, "10.0.0.1", seed=1)
        self.location = LocationService()
        front.add_router(Registrar(front, self.location, self.clock, ["10.0.0.1"]))
        _, core = build_memory_stack(self.network, "10.0.0.2", seed=2)
        self.table = SessionTable("node", local_registration=local_registration_factory(
            core, self.clock, "10.0.0.1"))

    def open(self, fields):
        connection = RecordingConnection()
        session = self.table.open(connection, "/s", fields)
        self.network.run()
        return connection, session

    def test_local_session_registered_with_its_contact(self):
        """
        A session without sipRegisterRequired is bound in front under its login, its Contact
        naming the session; the client hears nothing of it; closing unregisters it.
        """
        connection, session = self.open({"sipLogin": "dave"})
        [binding] = self.location.lookup("sip:dave@10.0.0.1", self.clock.seconds())
        self.assertEqual(binding.contact.uri.param("wcs"), session.contact_id)
        self.assertEqual((binding.contact.uri.host, connection.messages), ("10.0.0.2", []))
        self.assertFalse(session.registered)  # not the client's own (sipRegisterRequired)
        self.table.close(session, "bye")
        self.network.run()
        self.assertEqual(self.location.lookup("sip:dave@10.0.0.1", self.clock.seconds()), [])

    def test_no_login_no_registration(self):
        """
        A session without sipLogin has nothing to register.
        """
        _, session = self.open({})
        self.assertIsNone(session.registration)
        self.assertEqual(len(self.location), 0)
