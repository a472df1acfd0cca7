"""
Tests for L{StreamRegistry.resolve}: a name nobody publishes here may be made playable by a
resolver (the cluster module copies another node's stream).
"""

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from wcs_twisted.interfaces import IStreamResolver, IStreamSource
from wcs_twisted.media.streams import StreamRegistry


@implementer(IStreamSource)
class Source:
    """
    A PCMU source with nothing behind it (tests push packets into its stream themselves).
    """

    audio_codec, video_codec = "PCMU/8000", None

    def request_keyframe(self):
        pass

    def stream_ended(self, reason):
        pass


@implementer(IStreamResolver)
class Copier:
    """
    Publishes a copy of any name it is asked for, and remembers the names.
    """

    def __init__(self, registry):
        self.registry = registry
        self.asked = []

    def resolve_stream(self, name):
        self.asked.append(name)
        return self.registry.publish(name, Source(), {"originNodeId": "b"})


class Broken:
    def resolve_stream(self, name):
        raise RuntimeError("boom")


class ResolveTests(SynchronousTestCase):
    def setUp(self):
        self.registry = StreamRegistry(Clock())

    def test_local_stream_first(self):
        """
        A stream published here is the answer; resolvers are not asked.
        """
        copier = Copier(self.registry)
        self.registry.add_resolver(copier)
        local = self.registry.publish("s", Source())
        self.assertIs(self.registry.resolve("s"), local)
        self.assertEqual(copier.asked, [])

    def test_resolver_makes_it_once(self):
        """
        An unknown name is resolved once; afterwards it is a local stream; get() never asks.
        """
        copier = Copier(self.registry)
        self.registry.add_resolver(copier)
        self.assertIsNone(self.registry.get("s"))
        copy = self.registry.resolve("s")
        self.assertEqual(copy.properties, {"originNodeId": "b"})
        self.assertIs(self.registry.resolve("s"), copy)
        self.assertEqual(copier.asked, ["s"])

    def test_broken_resolver_is_logged_and_skipped(self):
        """
        A resolver that raises is logged; the next one is asked; removed ones are not.
        """
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        copier = Copier(self.registry)
        self.registry.add_resolver(Broken())
        self.registry.add_resolver(copier)
        self.assertIsNotNone(self.registry.resolve("s"))
        self.assertTrue(any("resolver" in e.get("log_format", "") for e in events))
        self.registry.remove_resolver(copier)
        self.registry.add_resolver(copier)
        self.registry.remove_resolver(copier)
        self.assertIsNone(self.registry.resolve("other"))
        self.assertEqual(copier.asked, ["s"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)
