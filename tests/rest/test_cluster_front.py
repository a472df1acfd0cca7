"""
Tests for the REST front-end of a cluster node (L{wcs_twisted.rest.api} with the service
C{"cluster"}): /call/find answers for the whole cluster, a method naming another node's call is
relayed, a relayed request is answered here only.  The other nodes are an in-memory
L{IClusterDirectory} (the Redis one is tested in tests/modules_builtin/test_cluster.py and end
to end in tests/integration/test_cluster.py).
"""

import json

from treq.testing import StubTreq
from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tests.rest.test_api import ADMIN, BASE
from tests.test_modules import call_table, new_call
from wcs_twisted.errors import DomainError
from wcs_twisted.gateway.sessions import SessionTable
from wcs_twisted.interfaces import IClusterDirectory
from wcs_twisted.metrics import ServerMetrics
from wcs_twisted.rest.api import RestAPI
from wcs_twisted.rest.web import build_site


@implementer(IClusterDirectory)
class OtherNodes:
    """
    The other nodes: their calls, and what the owner answers a relayed request.
    """

    def __init__(self):
        self.calls = [{"callId": "remote-1", "nodeId": "b", "caller": "carol"}]
        self.relayed = []
        self.answer = succeed((200, b"application/json", b'{"by": "b"}'))

    def remote_calls(self, filters):
        return succeed([c for c in self.calls if all(c.get(k) == v for k, v in filters.items())])

    def remote_streams(self, filters):
        return succeed([])

    def remote_connections(self, filters):
        return succeed([{"sessionId": "/remote", "nodeId": "b"}])

    def relay(self, method, path, body, headers):
        self.relayed.append((method, path, body, headers))
        return self.answer


class ClusterFrontTestCase(SynchronousTestCase):
    """
    Node a's REST site with the in-memory other nodes.
    """

    def setUp(self):
        self.table = call_table(Clock())
        self.nodes = OtherNodes()
        api = RestAPI(SessionTable("a@127.0.0.1"), self.table, services={"cluster": self.nodes})
        self.http = StubTreq(build_site(api, ("admin", "admin"), (), ServerMetrics(),
                                        []).resource)

    def call(self, path, body=None, relayed=False, base=BASE):
        headers = dict(ADMIN, **{"Content-Type": "application/json"})
        if relayed:
            headers["X-WCS-Relayed"] = "b"
        response = self.successResultOf(self.http.request(
            "POST", base + path, json=body if body is not None else {}, headers=headers))
        return response.code, self.successResultOf(self.http.content(response))


class ClusterFrontTests(ClusterFrontTestCase):

    def test_directory_is_an_interface_provider(self):
        """
        The in-memory stand-in keeps to the interface the cluster module provides.
        """
        verifyObject(IClusterDirectory, self.nodes)

    def test_connections_of_the_cluster(self):
        """
        /connection/find_all and /connection/find answer with the other nodes' sessions too.
        """
        code, content = self.call("/connection/find_all")
        self.assertEqual((code, json.loads(content)), (200, [{"sessionId": "/remote",
                                                              "nodeId": "b"}]))
        code, _ = self.call("/connection/find_all", relayed=True)
        self.assertEqual(code, 404)  # a relayed request answers for this node only

    def test_find_all_sees_the_cluster(self):
        """
        This node's calls and the other nodes' calls, in one answer; filters apply to both.
        """
        new_call(self.table, "local-1")
        code, content = self.call("/call/find_all")
        self.assertEqual((code, [c["callId"] for c in json.loads(content)]),
                         (200, ["local-1", "remote-1"]))
        code, content = self.call("/call/find", {"caller": "carol"})
        self.assertEqual((code, content.count(b"remote-1")), (200, 1))

    def test_nothing_anywhere_is_404(self):
        """
        No call on any node: 404 as on a node alone; find never relays.
        """
        self.nodes.calls = []
        self.assertEqual(self.call("/call/find_all")[0], 404)
        self.assertEqual(self.call("/call/find", {"callId": "x"})[0], 404)
        self.assertEqual(self.nodes.relayed, [])

    def test_relayed_request_is_answered_here_only(self):
        """
        A request another node relayed sees only this node and is never relayed on: no loop
        between nodes, whatever the directory says.
        """
        self.assertEqual(self.call("/call/find_all", relayed=True)[0], 404)
        self.assertEqual(self.call("/call/terminate", {"callId": "remote-1"}, relayed=True)[0],
                         404)
        self.assertEqual(self.nodes.relayed, [])

    def test_method_for_another_nodes_call_is_relayed(self):
        """
        /call/terminate for a call not here goes to the directory with the method, path, body
        and credentials; the owner's answer is the answer.
        """
        code, content = self.call("/call/terminate", {"callId": "remote-1"})
        self.assertEqual((code, content), (200, b'{"by": "b"}'))
        self.assertEqual(self.nodes.relayed, [("POST", "/call/terminate", {"callId": "remote-1"},
                                               {"Authorization": ADMIN["Authorization"]})])

    def test_no_owner_is_404_and_a_silent_owner_is_an_error(self):
        """
        No node owns it: the local 404.  The owner does not answer: 500 with the reason.
        """
        self.nodes.answer = succeed(None)
        self.assertEqual(self.call("/call/terminate", {"callId": "gone"})[0], 404)
        self.nodes.answer = fail(DomainError("Cluster: relaying /call/terminate failed"))
        code, content = self.call("/call/terminate", {"callId": "remote-1"})
        self.assertEqual((code, content), (500, b'{"error": "Cluster: relaying /call/terminate '
                                                b'failed"}'))



class LegacyClusterTests(ClusterFrontTestCase):
    """
    The legacy /RESTCall/ methods see the cluster as the modern ones do.
    """

    def legacy(self, path, body=None, relayed=False):
        return self.call(path, body, relayed, base=BASE.replace("/rest-api", "/RESTCall"))

    def test_get_calls_and_status_of_another_node(self):
        """
        getCalls lists this node's and the other nodes' calls; getStatus answers the status
        of another node's call as text; a call nowhere is 404.
        """
        new_call(self.table, "local-1")
        self.nodes.calls[0]["status"] = "ESTABLISHED"
        code, content = self.legacy("/getCalls")
        self.assertEqual((code, [c["callId"] for c in json.loads(content)]),
                         (200, ["local-1", "remote-1"]))
        self.assertEqual(self.legacy("/getStatus", {"callId": "remote-1"}),
                         (200, b"ESTABLISHED"))
        self.assertEqual(self.legacy("/getStatus", {"callId": "nowhere"})[0], 404)
        self.assertEqual(self.legacy("/getCalls", relayed=True)[1].count(b"remote-1"), 0)

    def test_hangup_and_dtmf_go_to_the_owner(self):
        """
        hangup and sendDTMF for another node's call are relayed as /call/terminate and
        /call/send_dtmf with the body and credentials; the owner's status is the answer.
        """
        self.nodes.answer = succeed((200, None, b""))
        self.assertEqual(self.legacy("/hangup", {"callId": "remote-1"}), (200, b""))
        dtmf = {"callId": "remote-1", "dtmf": "5", "type": "RFC2833"}
        self.nodes.answer = succeed((200, None, b""))
        self.assertEqual(self.legacy("/sendDTMF", dtmf), (200, b""))
        self.assertEqual(self.nodes.relayed, [
            ("POST", "/call/terminate", {"callId": "remote-1"},
             {"Authorization": ADMIN["Authorization"]}),
            ("POST", "/call/send_dtmf", dtmf, {"Authorization": ADMIN["Authorization"]})])
        self.nodes.answer = succeed(None)  # nobody owns it
        self.assertEqual(self.legacy("/hangup", {"callId": "gone"})[0], 404)
