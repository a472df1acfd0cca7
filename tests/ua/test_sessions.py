"""
Tests for L{wcs_twisted.ua.sessions}.
"""

from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from wcs_twisted.interfaces import IClientConnection
from wcs_twisted.ua.errors import InvalidField, NotFound
from wcs_twisted.ua.sessions import SessionTable


@implementer(IClientConnection)
class SilentConnection:
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
