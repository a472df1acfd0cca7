"""
Tests for L{wcs_twisted.gateway.sessions}.
"""

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.signalling.messages import ClientConnection
from wcs_twisted.sip.auth import DigestAuthenticator
from wcs_twisted.testing.network import MemoryNetwork, build_memory_stack
from wcs_twisted.ua.location import LocationService
from wcs_twisted.ua.registrar import Registrar
from wcs_twisted.ua.registration import RegistrationClient
from wcs_twisted.errors import DomainError, InvalidField, NotFound
from wcs_twisted.gateway.sessions import SessionTable


class SilentConnection(ClientConnection):
    """
    A connection that sends nowhere.
    """

    peer = "127.0.0.1:1"

    def send_message(self, name, data):
        pass

    def close(self, code, reason):
        pass


class SessionTableTests(SynchronousTestCase):
    """
    Opening, finding and closing sessions.
    """

    def setUp(self):
        self.counts = []
        tokens = iter(["t1", "t2", "t3"])
        self.table = SessionTable("node", token_factory=lambda: next(tokens),
                                  on_change=self.counts.append)

    def test_open_find_close(self):
        """
        A session is found by id and token until closed; the count is reported each time.
        """
        session = self.table.open(SilentConnection(), "/a/b", {"sipLogin": "alice"})
        self.assertIs(self.table.get("/a/b"), session)
        self.assertIs(self.table.by_token("t1"), session)
        self.table.close(session, "bye")
        self.table.close(session, "again")
        self.assertRaises(NotFound, self.table.get, "/a/b")
        self.assertIsNone(self.table.by_token("t1"))
        self.assertEqual(self.counts, [1, 0])

    def test_public_fields_hide_password(self):
        """
        The public view drops sipPassword and adds the server-given fields.
        """
        session = self.table.open(SilentConnection(), "/a/b",
                                  {"sipLogin": "alice", "sipPassword": "x", "appKey": "k"})
        self.assertEqual(session.public_fields(), {
            "sipLogin": "alice", "appKey": "k", "sessionId": "/a/b", "nodeId": "node",
            "authToken": "t1"})

    def test_bad_fields_open_nothing(self):
        """
        An invalid field refuses the session and leaves the table unchanged.
        """
        self.assertRaises(InvalidField, self.table.open, SilentConnection(), "/a/b",
                          {"keepAlive": "sometimes"})
        self.assertEqual(len(self.table), 0)
        self.assertEqual(self.counts, [])


class RecordingConnection(ClientConnection):
    """
    A connection that records the messages the gateway's events become (as the WebSocket
    front-end encodes them, so tests read the wire protocol) and its close.
    """

    peer = "127.0.0.1:2"

    def __init__(self):
        self.messages = []
        self.closed = None

    def send_message(self, name, data):
        self.messages.append((name, data))

    def close(self, code, reason):
        self.closed = (code, reason)


class SessionRegistrationTests(SynchronousTestCase):
    """
    sipRegisterRequired: the session registers its account and tells the client.
    """

    def setUp(self):
        self.network = MemoryNetwork()
        clock = self.network.clock
        _, server_core = build_memory_stack(self.network, "10.0.0.1", seed=1)
        self.location = LocationService()
        server_core.add_router(Registrar(
            server_core, self.location, clock, ["10.0.0.1"], users={"alice": "pw"},
            authenticator=DigestAuthenticator("10.0.0.1", b"k" * 32)))
        _, core = build_memory_stack(self.network, "10.0.0.2", seed=2)
        self.counts = []
        self.table = SessionTable(
            "node", registration_factory=lambda account, changed: RegistrationClient(
                core, clock, account, changed, retry=False),
            on_registrations=self.counts.append)

    def open(self, password):
        connection = RecordingConnection()
        session = self.table.open(connection, "/s", {
            "sipLogin": "alice", "sipPassword": password, "sipDomain": "10.0.0.1",
            "sipRegisterRequired": "true"})
        self.network.run()
        return connection, session

    def test_registered_sent_after_success(self):
        """
        'registered' reaches the client only after the registrar's 200.
        """
        connection, session = self.open("pw")
        self.assertEqual(connection.messages, [("registered", [])])
        self.assertEqual(self.counts, [1])
        self.assertEqual(len(self.location), 1)

    def test_failure_is_fail_then_close(self):
        """
        A refused registration is a fail naming the status, then the socket is closed.
        """
        connection, session = self.open("wrong")
        name, data = connection.messages[-1]
        self.assertEqual(name, "fail")
        self.assertEqual(data[0]["apiMethod"], "RegistrationStatusEvent")
        self.assertEqual(data[0]["status"], "AUTHENTICATION_FAIL")
        self.assertIn("403", data[0]["info"])
        self.assertEqual(connection.closed[0], 1000)

    def test_close_unregisters(self):
        """
        Closing the session sends REGISTER with Expires 0; the binding is gone.
        """
        connection, session = self.open("pw")
        self.table.close(session, "bye")
        self.assertEqual(len(self.table.unregistering), 1)
        self.network.run()
        self.assertEqual(len(self.location), 0)
        self.assertEqual(self.table.unregistering, set())
        self.assertEqual(self.counts, [1, 0])

    def test_refused_registrar_gets_no_register(self):
        """
        An observer's check_registration refusal (the call policy) is a fail naming it, then
        the socket is closed, and no REGISTER leaves.
        """
        class Policy:
            def session_opened(self, session):
                pass

            def check_registration(self, session):
                raise DomainError("Registering at 10.0.0.1 is not allowed")

        self.table.observers.append(Policy())
        connection, session = self.open("pw")
        name, data = connection.messages[-1]
        self.assertEqual((name, data[0]["status"]), ("fail", "FAILED"))
        self.assertIn("not allowed", data[0]["info"])
        self.assertEqual(connection.closed[0], 1000)
        self.assertEqual((session.registration, session.registered, len(self.location)),
                         (None, False, 0))

    def test_no_registration_without_the_flag(self):
        """
        Without sipRegisterRequired nothing is registered and 'registered' is never sent.
        """
        connection = RecordingConnection()
        self.table.open(connection, "/s", {"sipLogin": "alice", "sipDomain": "10.0.0.1"})
        self.network.run()
        self.assertEqual(connection.messages, [])
        self.assertEqual(len(self.location), 0)
