"""
The client side of bench/media_clients.py, run as its child process on CPU1: N aiortc
"browsers" that each place one call through the gateway under test and keep it up.

It prints one JSON line C{{"ready": true}} once every call is up, then answers each
C{stats} line on stdin with the summed RTP counters of all calls (aiortc's getStats), and
leaves on C{quit}.  Two ways in:

  - wcs: tests/integration/wcs_client.py's WCSClient (the WCS Web SDK's protocol), local mode,
    calling C{--callee} through the built-in registrar;
  - janus: Janus's JSON API over one WebSocket per client (create, attach janus.plugin.sip,
    register as a guest, call the SIP URI C{--callee} with the aiortc offer, take the answer
    from the C{accepted} event), keepalives every 20 s.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys

CODECS = {"relay": ["PCMU"], "transcode": ["opus"]}


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def control(stats) -> None:
    """
    Serve C{stats} and C{quit} from stdin.
    """
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        command = line.strip()
        if command == "stats":
            emit(await stats())
        elif command in ("quit", ""):
            return


async def totals(pcs) -> dict:
    from tests.integration.wcs_client import _collect_stats

    sent = received = established = 0
    for pc in pcs:
        counters = (await _collect_stats(pc))["audio"]
        sent += counters["packetsSent"]
        received += counters["packetsReceived"]
        established += pc.connectionState == "connected"
    return {"sent": sent, "received": received, "established": established}


# -- wcs -------------------------------------------------------------------------------


def run_wcs(args) -> None:
    from twisted.internet import asyncioreactor

    asyncioreactor.install()
    from twisted.internet import defer, reactor

    from tests.integration.wcs_client import WCSClient

    directory = os.path.abspath(f"clients-{os.getpid()}")

    async def main():
        clients, pcs = [], []

        async def one(i):
            client = WCSClient(args.url, reactor, directory=os.path.join(directory, str(i)))
            clients.append(client)
            name = f"alice{i}"
            await client.connect(sipLogin=name, sipAuthenticationName=name, sipPassword="x",
                                 sipDomain="127.0.0.1", sipOutboundProxy="127.0.0.1",
                                 sipPort="0", sipRegisterRequired=False)
            call_id = await client.call(args.callee, codecs=CODECS[args.mode])
            await client.wait_status(call_id, "ESTABLISHED", timeout=60)
            pcs.append(client.calls[call_id].pc)

        # Five set-ups at a time: on a loaded client core one at a time takes minutes.
        for first in range(0, args.calls, 5):
            await defer.gatherResults(
                [defer.ensureDeferred(one(i)) for i in range(first, min(first + 5, args.calls))],
                consumeErrors=True)
        emit({"ready": True})
        await defer.Deferred.fromFuture(asyncio.ensure_future(control(lambda: totals(pcs))))
        for client in clients:
            try:
                await client.close()
            except Exception:
                pass

    def done(result):
        reactor.stop()
        return result

    reactor.callWhenRunning(lambda: defer.ensureDeferred(main()).addBoth(done))
    reactor.run()


# -- janus -----------------------------------------------------------------------------


class JanusSession:
    """
    One Janus session with one janus.plugin.sip handle over its own WebSocket.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._ids = itertools.count()
        self._pending: dict[str, asyncio.Future] = {}
        self.events: asyncio.Queue = asyncio.Queue()

    async def open(self) -> None:
        import websockets

        self.ws = await websockets.connect(self.url, subprotocols=["janus-protocol"],
                                           max_size=None)
        self._reader = asyncio.ensure_future(self._read())
        self.session = (await self.request({"janus": "create"}))["data"]["id"]
        self.handle = (await self.request({"janus": "attach", "session_id": self.session,
                                           "plugin": "janus.plugin.sip"}))["data"]["id"]
        self._keepalive = asyncio.ensure_future(self._keep())

    async def _read(self) -> None:
        async for text in self.ws:
            message = json.loads(text)
            kind = message.get("janus")
            future = self._pending.get(message.get("transaction"))
            if future is not None and not future.done() and kind != "event":
                future.set_result(message)
            elif kind in ("event", "webrtcup", "media", "hangup", "trickle"):
                await self.events.put(message)

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(20)
            await self.request({"janus": "keepalive", "session_id": self.session})

    async def request(self, body: dict) -> dict:
        transaction = f"t{next(self._ids)}"
        future = asyncio.get_running_loop().create_future()
        self._pending[transaction] = future
        await self.ws.send(json.dumps(dict(body, transaction=transaction)))
        try:
            reply = await asyncio.wait_for(future, 20)
        finally:
            self._pending.pop(transaction, None)
        if reply.get("janus") == "error":
            raise RuntimeError(f"janus: {reply}")
        return reply

    async def message(self, body: dict, jsep: dict | None = None) -> None:
        request = {"janus": "message", "session_id": self.session, "handle_id": self.handle,
                   "body": body}
        if jsep is not None:
            request["jsep"] = jsep
        await self.request(request)

    async def event(self, name: str, timeout: float = 30) -> dict:
        while True:
            message = await asyncio.wait_for(self.events.get(), timeout)
            data = message.get("plugindata", {}).get("data", {})
            result = data.get("result", {})
            if data.get("error"):
                raise RuntimeError(f"janus sip: {data}")
            if result.get("event") == name:
                return message

    async def close(self) -> None:
        self._keepalive.cancel()
        await self.ws.close()
        self._reader.cancel()


def run_janus(args) -> None:
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from tests.integration.wcs_client import (
        ToneTrack,
        _drain,
        _prefer_codecs,
        close_peer_connection,
    )

    class Sink:
        video_frames_received = 0

    async def one(i: int):
        janus = JanusSession(args.url)
        await janus.open()
        await janus.message({"request": "register", "type": "guest",
                             "username": f"sip:alice{i}@127.0.0.1"})
        await janus.event("registered")
        pc = RTCPeerConnection()
        transceiver = pc.addTransceiver(ToneTrack(440), direction="sendrecv")
        _prefer_codecs(transceiver, "audio", CODECS[args.mode])
        consumers = []
        pc.on("track", lambda track: consumers.append(asyncio.ensure_future(_drain(Sink(),
                                                                                    track))))
        # Janus's libnice never gathers loopback, so the browser uses this host's own
        # address too (the packets still never leave the machine).
        await pc.setLocalDescription(await pc.createOffer())
        await janus.message({"request": "call", "uri": args.callee},
                            {"type": "offer", "sdp": pc.localDescription.sdp})
        accepted = await janus.event("accepted")
        await pc.setRemoteDescription(RTCSessionDescription(accepted["jsep"]["sdp"], "answer"))
        for _ in range(150):
            if pc.connectionState == "connected":
                break
            await asyncio.sleep(0.1)
        return janus, pc, consumers

    async def main():
        legs = []
        for i in range(args.calls):
            legs.append(await one(i))
        emit({"ready": True})
        await control(lambda: totals([pc for _, pc, _ in legs]))
        for janus, pc, consumers in legs:
            for task in consumers:
                task.cancel()
            await close_peer_connection(pc)
            await janus.close()

    asyncio.run(main())


def run_driver(args) -> None:
    args.calls = int(args.calls)
    (run_wcs if args.driver == "wcs" else run_janus)(args)
