// wcs.js: a small browser client for the WCS WebSocket protocol (wcs-twisted's own code).
// (Over 600 lines on purpose: one ES module the pages import whole, with no build step.)
//
// Written for the demo pages of wcs-twisted; the API follows the spirit of the Flashphoner
// WCS Web SDK (sessions, calls and streams with status events) so that users of that SDK
// feel at home, but it is a separate, dependency-free ES module with no build step.
//
//   import { createSession, SESSION_STATUS, CALL_STATUS } from "./wcs.js";
//   const session = createSession({ urlServer: "ws://host:8080",
//                                   sipOptions: { login: "alice", domain: "host" } });
//   session.on(SESSION_STATUS.ESTABLISHED, () => {
//     const call = session.createCall({ callee: "bob" });
//     call.on(CALL_STATUS.ESTABLISHED, () => console.log("talking"));
//     call.call();
//   });
//
// Wire behaviour (see docs/protocol.md and docs/web.md):
//   - every message is {"message": name, "data": [ ... ]}; ping is answered with pong [null];
//   - offers and answers go out as createOffer()/createAnswer() return them, before ICE
//     gathering (no a=candidate lines): the server learns our address from our STUN checks;
//   - setRemoteSDP [id, sdp, isInitiator] is an answer while we hold a local offer, and is
//     cached when it names no known call or stream (an incoming call's offer comes first);
//   - call status comes from data[0].status of notifyTryingResponse/ring/talk/hold/finish;
//   - a `fail` naming a call or stream method fails the pending call or stream with its info.

export const SESSION_STATUS = Object.freeze({
  PENDING: "PENDING",
  CONNECTED: "CONNECTED",
  ESTABLISHED: "ESTABLISHED",
  REGISTERED: "REGISTERED",
  DISCONNECTED: "DISCONNECTED",
  FAILED: "FAILED",
  WARN: "WARN",
  INCOMING_CALL: "INCOMING_CALL",
  APP_DATA: "APP_DATA",
});

export const CALL_STATUS = Object.freeze({
  NEW: "NEW",
  PENDING: "PENDING",
  TRYING: "TRYING",
  RING: "RING",
  RING_MEDIA: "RING_MEDIA",
  SESSION_PROGRESS: "SESSION_PROGRESS",
  ESTABLISHED: "ESTABLISHED",
  HOLD: "HOLD",
  BUSY: "BUSY",
  FINISH: "FINISH",
  FAILED: "FAILED",
});

export const STREAM_STATUS = Object.freeze({
  NEW: "NEW",
  PENDING: "PENDING",
  PUBLISHING: "PUBLISHING",
  PLAYING: "PLAYING",
  PAUSED: "PAUSED",
  UNPUBLISHED: "UNPUBLISHED",
  STOPPED: "STOPPED",
  FAILED: "FAILED",
  PLAYBACK_PROBLEM: "PLAYBACK_PROBLEM",
});

export const DTMF_TYPES = Object.freeze(["RFC2833", "INFO", "INFO_RELAY"]);

/** Event fired on a call for every status change, whatever the status. */
export const STATUS_CHANGED = "STATUS_CHANGED";
/** Event fired on a call for notifyTransferEvent (payload: the transfer object). */
export const TRANSFER_EVENT = "TRANSFER_EVENT";
/** Event fired on a call for DTMF from the far end (notifyDtmfEvent, a wcs-twisted extension). */
export const DTMF_RECEIVED = "DTMF_RECEIVED";
/** Event fired on a stream for notifyStreamEvent. */
export const STREAM_EVENT = "STREAM_EVENT";

const CALL_RELEASED = new Set([CALL_STATUS.FINISH, CALL_STATUS.FAILED, CALL_STATUS.BUSY]);
const STREAM_RELEASED = new Set([STREAM_STATUS.STOPPED, STREAM_STATUS.FAILED,
                                 STREAM_STATUS.UNPUBLISHED]);
const CALL_METHODS = new Set(["call", "answer", "hangup", "hold", "unhold", "sendDtmf",
                              "transfer", "CallStatusEvent"]);
const STREAM_METHODS = new Set(["playStream", "publishStream", "stopStream", "unPublishStream",
                                "StreamStatusEvent"]);

/** A random UUID; crypto.randomUUID exists only on secure pages, getRandomValues everywhere. */
export function uuid() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function" && globalThis.isSecureContext) {
    return crypto.randomUUID();
  }
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The default WebSocket URL for a page: ws://<page host>:8080, or wss://<host>:8443 on https. */
export function defaultServerUrl(location = globalThis.location) {
  const host = location && location.hostname ? location.hostname : "127.0.0.1";
  const bracketed = host.includes(":") ? `[${host}]` : host;
  return location && location.protocol === "https:" ? `wss://${bracketed}:8443`
                                                     : `ws://${bracketed}:8080`;
}

/**
 * Why media cannot be captured on this page, or null when it can.  Browsers expose
 * navigator.mediaDevices only on secure pages (https, or http://localhost / 127.0.0.1).
 */
export function mediaUnavailableReason() {
  if (!globalThis.RTCPeerConnection) {
    return "This browser has no WebRTC (RTCPeerConnection is missing).";
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return "The browser hides microphone and camera on this page because it is not secure: " +
           "open the page over https (port 8444) or from http://localhost.";
  }
  return null;
}

/** A tiny event emitter: on(name, handler), off(name, handler), handlers may throw safely. */
class Emitter {
  constructor() {
    this._handlers = new Map();
  }

  on(name, handler) {
    if (!this._handlers.has(name)) this._handlers.set(name, new Set());
    this._handlers.get(name).add(handler);
    return this;
  }

  off(name, handler) {
    const handlers = this._handlers.get(name);
    if (handlers) handlers.delete(handler);
    return this;
  }

  _emit(name, ...args) {
    for (const handler of Array.from(this._handlers.get(name) || [])) {
      try {
        handler(...args);
      } catch (error) {
        console.error(`wcs.js: a ${name} handler threw`, error);
      }
    }
  }
}

function describeMediaError(error) {
  const name = error && error.name;
  if (name === "NotAllowedError") return "Microphone/camera access was refused";
  if (name === "NotFoundError") return "No microphone or camera was found";
  if (name === "NotReadableError") return "The microphone or camera is busy in another program";
  if (name === "OverconstrainedError") return "The chosen microphone or camera is not available";
  return `Media error: ${error && error.message ? error.message : error}`;
}

/** Remove the named codecs (e.g. ["SILK"]) from an SDP, as the WCS demos do. */
export function stripCodecs(sdp, names) {
  if (!names || !names.length) return sdp;
  const unwanted = new Set(names.map((n) => n.toUpperCase()));
  const lines = sdp.split(/\r\n/);
  const dropped = new Set();
  for (const line of lines) {
    const match = /^a=rtpmap:(\d+) ([^/]+)\//.exec(line);
    if (match && unwanted.has(match[2].toUpperCase())) dropped.add(match[1]);
  }
  if (!dropped.size) return sdp;
  const out = [];
  for (const line of lines) {
    const attr = /^a=(?:rtpmap|fmtp|rtcp-fb):(\d+)[ ]/.exec(line);
    if (attr && dropped.has(attr[1])) continue;
    if (line.startsWith("m=")) {
      const parts = line.split(" ");
      out.push(parts.slice(0, 3).concat(parts.slice(3).filter((pt) => !dropped.has(pt))).join(" "));
      continue;
    }
    out.push(line);
  }
  return out.join("\r\n");
}

/** Summary of RTCPeerConnection.getStats() for one media kind. */
function summarize(report, kind) {
  const result = {
    packetsSent: 0, bytesSent: 0, packetsReceived: 0, bytesReceived: 0,
    packetsLost: 0, jitter: null, rtt: null, codec: null, audioLevel: null,
  };
  let codecId = null;
  for (const stat of report.values()) {
    const statKind = stat.kind || stat.mediaType;
    if (stat.type === "outbound-rtp" && statKind === kind) {
      result.packetsSent += stat.packetsSent || 0;
      result.bytesSent += stat.bytesSent || 0;
      codecId = codecId || stat.codecId;
    } else if (stat.type === "inbound-rtp" && statKind === kind) {
      result.packetsReceived += stat.packetsReceived || 0;
      result.bytesReceived += stat.bytesReceived || 0;
      result.packetsLost += stat.packetsLost || 0;
      if (typeof stat.jitter === "number") result.jitter = stat.jitter;
      if (typeof stat.audioLevel === "number") result.audioLevel = stat.audioLevel;
      codecId = codecId || stat.codecId;
    } else if (stat.type === "remote-inbound-rtp" && statKind === kind &&
               typeof stat.roundTripTime === "number") {
      result.rtt = stat.roundTripTime;
    }
  }
  if (result.rtt === null) {
    for (const stat of report.values()) {
      if (stat.type === "candidate-pair" && stat.nominated &&
          typeof stat.currentRoundTripTime === "number") {
        result.rtt = stat.currentRoundTripTime;
      }
    }
  }
  if (codecId && report.get(codecId)) {
    const codec = report.get(codecId);
    const name = (codec.mimeType || "").split("/")[1] || codec.mimeType;
    result.codec = `${name}/${codec.clockRate}${codec.channels > 1 ? "/" + codec.channels : ""}`;
  }
  return result;
}

/** The WebRTC parts shared by calls and streams: a peer connection and its media. */
class MediaLeg extends Emitter {
  constructor(session, id) {
    super();
    this._session = session;
    this._id = id;
    this._pc = null;
    this._localStream = null;
    this._remoteStream = null;
    this._info = null;
  }

  id() {
    return this._id;
  }

  getInfo() {
    return this._info;
  }

  getPeerConnection() {
    return this._pc;
  }

  getLocalStream() {
    return this._localStream;
  }

  getRemoteStream() {
    return this._remoteStream;
  }

  _newPeerConnection() {
    const pc = new RTCPeerConnection({
      iceServers: this._session._options.mediaOptions?.iceServers || [],
      bundlePolicy: "max-compat",
    });
    this._remoteStream = new MediaStream();
    pc.ontrack = (event) => {
      if (!this._remoteStream.getTracks().includes(event.track)) {
        this._remoteStream.addTrack(event.track);
      }
      this._remoteTrackAdded(event.track);
    };
    pc.oniceconnectionstatechange = () => {
      this._emit("ICE_STATE", pc.iceConnectionState);
    };
    this._pc = pc;
    return pc;
  }

  _remoteTrackAdded(track) {}

  /** Apply the server's SDP: an answer while we hold a local offer, else an offer. */
  async _applyRemoteSdp(sdp) {
    if (!this._pc) {
      throw new Error("no peer connection for the remote SDP");
    }
    const type = this._pc.signalingState === "have-local-offer" ? "answer" : "offer";
    await this._pc.setRemoteDescription({ type, sdp });
  }

  async _capture(constraints) {
    const reason = mediaUnavailableReason();
    if (reason) throw new Error(reason);
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch (error) {
      throw new Error(describeMediaError(error));
    }
  }

  /** Local and remote statistics: {audio: {...}, video: {...}, raw: RTCStatsReport}. */
  async getStats() {
    if (!this._pc) return null;
    const report = await this._pc.getStats();
    return { audio: summarize(report, "audio"), video: summarize(report, "video"), raw: report };
  }

  _closeMedia() {
    if (this._pc) {
      try {
        this._pc.close();
      } catch (error) {
        /* already closed */
      }
    }
    if (this._localStream && !this._keepLocalStream) {
      for (const track of this._localStream.getTracks()) track.stop();
    }
  }
}

/** One call: outgoing (createCall + call()) or incoming (INCOMING_CALL + answer()). */
export class Call extends MediaLeg {
  constructor(session, options, incoming = null) {
    super(session, incoming ? incoming.callId : (options.callId || uuid()));
    this._options = options;
    this._incoming = Boolean(incoming);
    this._status = CALL_STATUS.NEW;
    this._caller = incoming ? incoming.caller : null;
    this._callee = incoming ? incoming.callee : options.callee;
    this._visibleName = incoming ? incoming.visibleName : options.visibleName;
    this._custom = incoming ? (incoming.custom || {}) : (options.custom || {});
    this._hasVideo = incoming ? Boolean(incoming.hasVideo) : Boolean(options.constraints?.video);
    this._sentToServer = this._incoming;
    this._remoteAudio = options.remoteAudio || null;
    this._ownsRemoteAudio = false;
    this._muted = false;
    this._sipStatus = null;
    this.incomingObject = incoming;
  }

  status() {
    return this._status;
  }

  isIncoming() {
    return this._incoming;
  }

  caller() {
    return this._caller;
  }

  callee() {
    return this._callee;
  }

  visibleName() {
    return this._visibleName;
  }

  sipStatus() {
    return this._sipStatus;
  }

  hasVideo() {
    return this._hasVideo;
  }

  /** Place the call: capture media, send `call` with an offer made before ICE gathering. */
  async call() {
    if (this._incoming || this._status !== CALL_STATUS.NEW) {
      throw new Error(`Cannot call: the call is ${this._incoming ? "incoming" : this._status}`);
    }
    if (!this._callee) throw new Error("Cannot call: no callee");
    this._setStatus(CALL_STATUS.PENDING, {});
    try {
      const constraints = this._constraints();
      this._localStream = this._options.localStream ||
        await this._capture({ audio: constraints.audio, video: constraints.video });
      this._keepLocalStream = Boolean(this._options.localStream);
      if (CALL_RELEASED.has(this._status)) return;  // hung up while we waited for the mic
      const pc = this._newPeerConnection();
      for (const track of this._localStream.getTracks()) pc.addTrack(track, this._localStream);
      if (!this._localStream.getAudioTracks().length) pc.addTransceiver("audio", { direction: "recvonly" });
      if (constraints.video && !this._localStream.getVideoTracks().length) {
        pc.addTransceiver("video", { direction: "recvonly" });
      }
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      if (CALL_RELEASED.has(this._status)) return;
      const sdp = stripCodecs(offer.sdp, this._options.stripCodecs);
      this._sentToServer = true;
      this._session._send("call", {
        callId: this._id,
        incoming: false,
        hasVideo: this._localStream.getVideoTracks().length > 0,
        hasAudio: this._localStream.getAudioTracks().length > 0,
        status: CALL_STATUS.PENDING,
        mediaProvider: "WebRTC",
        sdp,
        sipSDP: this._options.sipSDP,
        caller: this._session.getSipLogin(),
        callee: this._callee,
        custom: this._custom,
        visibleName: this._visibleName || this._session.getSipLogin(),
      });
    } catch (error) {
      this._failLocally(error.message || String(error));
    }
  }

  /** Answer an incoming call with the SDP offer that came before notifyIncomingCall. */
  async answer(options = {}) {
    if (!this._incoming) throw new Error("Cannot answer an outgoing call");
    if (this._status !== CALL_STATUS.NEW && this._status !== CALL_STATUS.RING) {
      throw new Error(`Cannot answer: the call is ${this._status}`);
    }
    const offer = this._session._takeCachedSdp(this._id);
    if (!offer) {
      this._failLocally("No remote SDP available for this call (the server sent none)");
      return;
    }
    Object.assign(this._options, options);
    if (options.remoteAudio) this._remoteAudio = options.remoteAudio;
    this._answering = true;
    try {
      const offerHasVideo = /^m=video /m.test(offer);
      const constraints = this._constraints();
      const wantVideo = Boolean(constraints.video) && offerHasVideo;
      this._localStream = this._options.localStream ||
        await this._capture({ audio: constraints.audio, video: wantVideo ? constraints.video : false });
      this._keepLocalStream = Boolean(this._options.localStream);
      if (CALL_RELEASED.has(this._status)) return;
      const pc = this._newPeerConnection();
      await pc.setRemoteDescription({ type: "offer", sdp: offer });
      for (const track of this._localStream.getTracks()) pc.addTrack(track, this._localStream);
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      if (CALL_RELEASED.has(this._status)) return;
      this._session._send("answer", {
        callId: this._id,
        incoming: true,
        hasVideo: wantVideo,
        hasAudio: true,
        status: CALL_STATUS.PENDING,
        mediaProvider: "WebRTC",
        sdp: stripCodecs(answer.sdp, this._options.stripCodecs),
        sipSDP: this._options.sipSDP,
        caller: this._caller,
        callee: this._callee,
        custom: this._custom,
      });
    } catch (error) {
      this._answering = false;
      this._failLocally(error.message || String(error));
      this._session._send("hangup", { callId: this._id });
    }
  }

  /**
   * End the call.  Unlike WebSDK 2.0 (which sends nothing while a call is NEW or PENDING),
   * the server hears `hangup` whenever it knows the call, so a ringing callee is cancelled.
   */
  hangup() {
    if (CALL_RELEASED.has(this._status)) return;
    if (this._sentToServer && this._session._connected()) {
      this._session._send("hangup", { callId: this._id });
      this._closeMedia();
    } else if (this._sentToServer) {
      this._failLocally("Hung up while disconnected from the server", CALL_STATUS.FINISH);
    } else {
      this._failLocally("Hung up before the call was placed", CALL_STATUS.FINISH);
    }
  }

  hold() {
    this._requireServerCall("hold");
    this._session._send("hold", { callId: this._id });
  }

  holdForTransfer() {
    this._requireServerCall("hold");
    this._session._send("hold", { callId: this._id, holdForTransfer: true });
  }

  unhold() {
    this._requireServerCall("unhold");
    this._session._send("unhold", { callId: this._id });
  }

  /** Send DTMF digits; type is RFC2833 (in the RTP stream), INFO or INFO_RELAY (SIP INFO). */
  sendDTMF(digit, type = "RFC2833") {
    this._requireServerCall("send DTMF");
    const digits = String(digit);
    if (!/^[0-9*#A-Da-d]+$/.test(digits)) throw new Error(`Not a DTMF digit: ${digits}`);
    if (!DTMF_TYPES.includes(type)) throw new Error(`Unknown DTMF type ${type}`);
    this._session._send("sendDtmf", { callId: this._id, dtmf: digits, type });
  }

  /** Blind transfer (SIP REFER) to a user name or SIP URI. */
  transfer(target) {
    this._requireServerCall("transfer");
    if (!target) throw new Error("Transfer needs a target");
    this._session._send("transfer", { callId: this._id, target: String(target) });
  }

  muteAudio() {
    this._setAudioEnabled(false);
  }

  unmuteAudio() {
    this._setAudioEnabled(true);
  }

  isAudioMuted() {
    return this._muted;
  }

  /** Switch the microphone during a call (replaces the sent track). */
  async setMicrophone(deviceId) {
    this._options.constraints = Object.assign({}, this._options.constraints,
      { audio: deviceId ? { deviceId: { exact: deviceId } } : true });
    if (!this._pc || !this._localStream) return;
    const fresh = await this._capture({ audio: this._options.constraints.audio, video: false });
    const [track] = fresh.getAudioTracks();
    track.enabled = !this._muted;
    const sender = this._pc.getSenders().find((s) => s.track && s.track.kind === "audio");
    if (sender) await sender.replaceTrack(track);
    for (const old of this._localStream.getAudioTracks()) {
      old.stop();
      this._localStream.removeTrack(old);
    }
    this._localStream.addTrack(track);
  }

  /** Play the far end's audio on another output device (where setSinkId exists). */
  async setSpeaker(deviceId) {
    this._speaker = deviceId;
    const element = this._remoteAudio;
    if (element && typeof element.setSinkId === "function") await element.setSinkId(deviceId || "");
  }

  _requireServerCall(what) {
    if (!this._sentToServer || CALL_RELEASED.has(this._status)) {
      throw new Error(`Cannot ${what}: the call is ${this._status}`);
    }
  }

  _setAudioEnabled(enabled) {
    this._muted = !enabled;
    if (this._localStream) {
      for (const track of this._localStream.getAudioTracks()) track.enabled = enabled;
    }
  }

  _constraints() {
    const given = this._options.constraints || {};
    return {
      audio: given.audio === undefined ? true : given.audio,
      video: given.video === undefined ? false : given.video,
    };
  }

  _remoteTrackAdded(track) {
    if (track.kind !== "audio" && !this._options.remoteVideo) return;
    if (track.kind === "video" && this._options.remoteVideo) {
      this._options.remoteVideo.srcObject = this._remoteStream;
      return;
    }
    if (!this._remoteAudio) {
      this._remoteAudio = document.createElement("audio");
      this._remoteAudio.autoplay = true;
      this._remoteAudio.hidden = true;
      document.body.appendChild(this._remoteAudio);
      this._ownsRemoteAudio = true;
    }
    if (this._remoteAudio.srcObject !== this._remoteStream) {
      this._remoteAudio.srcObject = this._remoteStream;
    }
    if (this._speaker) this.setSpeaker(this._speaker).catch(() => {});
    const playing = this._remoteAudio.play && this._remoteAudio.play();
    if (playing && playing.catch) playing.catch(() => {});
  }

  _onServerStatus(obj) {
    if (obj.sipStatus !== undefined && obj.sipStatus !== null) this._sipStatus = obj.sipStatus;
    if (obj.info) this._info = obj.info;
    if (obj.status) this._setStatus(obj.status, obj);
  }

  _failLocally(info, status = CALL_STATUS.FAILED) {
    this._info = info;
    this._setStatus(status, { callId: this._id, status, info });
  }

  _setStatus(status, obj) {
    if (CALL_RELEASED.has(this._status)) return;
    this._status = status;
    this._emit(status, this, obj);
    this._emit(STATUS_CHANGED, this, obj);
    if (CALL_RELEASED.has(status)) this._release();
  }

  _release() {
    this._closeMedia();
    if (this._ownsRemoteAudio && this._remoteAudio) {
      this._remoteAudio.srcObject = null;
      this._remoteAudio.remove();
    } else if (this._remoteAudio) {
      this._remoteAudio.srcObject = null;
    }
    this._session._forgetCall(this);
  }
}

/** A named stream: play() it (receive) or publish() it (send). */
export class Stream extends MediaLeg {
  constructor(session, options) {
    super(session, options.mediaSessionId || uuid());
    this._options = options;
    this._name = options.name;
    this._status = STREAM_STATUS.NEW;
    this._published = false;
  }

  name() {
    return this._name;
  }

  status() {
    return this._status;
  }

  published() {
    return this._published;
  }

  async play() {
    this._start(false);
  }

  async publish() {
    this._start(true);
  }

  async _start(publish) {
    if (this._status !== STREAM_STATUS.NEW) {
      throw new Error(`Cannot ${publish ? "publish" : "play"}: the stream is ${this._status}`);
    }
    if (!this._name) throw new Error("A stream needs a name");
    this._published = publish;
    this._setStatus(STREAM_STATUS.PENDING, {});
    try {
      const constraints = Object.assign({ audio: true, video: true }, this._options.constraints);
      const pc = this._newPeerConnection();
      if (publish) {
        this._localStream = this._options.localStream || await this._capture(constraints);
        if (STREAM_RELEASED.has(this._status)) return;
        for (const track of this._localStream.getTracks()) {
          pc.addTransceiver(track, { direction: "sendonly", streams: [this._localStream] });
        }
      } else {
        if (constraints.audio !== false) pc.addTransceiver("audio", { direction: "recvonly" });
        if (constraints.video !== false) pc.addTransceiver("video", { direction: "recvonly" });
      }
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      if (STREAM_RELEASED.has(this._status)) return;
      const fields = {
        mediaSessionId: this._id,
        name: this._name,
        published: publish,
        hasVideo: publish ? this._localStream.getVideoTracks().length > 0 : true,
        hasAudio: publish ? this._localStream.getAudioTracks().length > 0 : true,
        status: STREAM_STATUS.PENDING,
        record: Boolean(this._options.record),
        mediaProvider: "WebRTC",
        sdp: offer.sdp,
        custom: this._options.custom || {},
        constraints,
      };
      if (!publish) Object.assign(fields, { width: 0, height: 0 });
      this._sent = true;
      this._session._send(publish ? "publishStream" : "playStream", fields);
    } catch (error) {
      this._failLocally(error.message || String(error));
    }
  }

  stop() {
    if (STREAM_RELEASED.has(this._status)) return;
    if (!this._sent || !this._session._connected()) {
      this._failLocally("Stopped by user", this._published ? STREAM_STATUS.UNPUBLISHED
                                                           : STREAM_STATUS.STOPPED);
      return;
    }
    this._session._send(this._published ? "unPublishStream" : "stopStream", {
      mediaSessionId: this._id,
      name: this._name,
      published: this._published,
      hasVideo: true,
      hasAudio: true,
      status: this._status,
      record: false,
    });
    // The server answers with STOPPED/UNPUBLISHED; if it never does, release locally.
    this._stopTimer = setTimeout(() => {
      this._failLocally("Stopped by user (no answer from the server)",
                        this._published ? STREAM_STATUS.UNPUBLISHED : STREAM_STATUS.STOPPED);
    }, this._session._options.stopTimeout ?? 3000);
  }

  _remoteTrackAdded(track) {
    const display = this._options.display;
    if (display && display.srcObject !== this._remoteStream) {
      display.srcObject = this._remoteStream;
      const playing = display.play && display.play();
      if (playing && playing.catch) playing.catch(() => {});
    }
  }

  _onServerStatus(obj) {
    if (obj.info) this._info = obj.info;
    if (obj.status) this._setStatus(obj.status, obj);
  }

  _failLocally(info, status = STREAM_STATUS.FAILED) {
    this._info = info;
    this._setStatus(status, { mediaSessionId: this._id, name: this._name, status, info });
  }

  _setStatus(status, obj) {
    if (STREAM_RELEASED.has(this._status)) return;
    this._status = status;
    this._emit(status, this, obj);
    this._emit(STATUS_CHANGED, this, obj);
    if (STREAM_RELEASED.has(status)) {
      clearTimeout(this._stopTimer);
      this._closeMedia();
      if (this._options.display) this._options.display.srcObject = null;
      this._session._forgetStream(this);
    }
  }
}

/** One WebSocket connection to the server and the calls and streams on it. */
export class Session extends Emitter {
  constructor(options) {
    super();
    if (!options || !options.urlServer) throw new Error("createSession needs urlServer");
    this._options = options;
    this._status = SESSION_STATUS.PENDING;
    this._calls = new Map();
    this._streams = new Map();
    this._sdpCache = new Map();
    this._userData = null;
    this._info = null;
    this._ws = null;
  }

  status() {
    return this._status;
  }

  /** The session's last failure or close reason, as text (null when there is none). */
  getInfo() {
    return this._info;
  }

  /** The server's getUserData object (sessionId, authToken, sipLogin, ...). */
  getUserData() {
    return this._userData;
  }

  id() {
    return this._userData ? this._userData.sessionId : null;
  }

  getSipLogin() {
    return (this._userData && this._userData.sipLogin) || this._options.sipOptions?.login || "";
  }

  getCalls() {
    return Array.from(this._calls.values());
  }

  getStreams() {
    return Array.from(this._streams.values());
  }

  serverUrl() {
    return this._options.urlServer;
  }

  connect() {
    let ws;
    if (!/^wss?:\/\/[^/\s]+/i.test(this._options.urlServer)) {
      // Browsers now resolve relative and http URLs here; the WCS URL is always absolute ws(s).
      queueMicrotask(() => this._setStatus(SESSION_STATUS.FAILED,
        `Bad server URL ${this._options.urlServer}: it must start with ws:// or wss://`));
      return this;
    }
    try {
      ws = new WebSocket(this._options.urlServer);
    } catch (error) {
      // A malformed URL throws synchronously (SyntaxError).
      queueMicrotask(() => this._setStatus(SESSION_STATUS.FAILED,
        `Bad server URL ${this._options.urlServer}: ${error.message}`));
      return this;
    }
    this._ws = ws;
    const timeout = this._options.timeout ?? 10000;
    this._connectTimer = setTimeout(() => {
      if (this._status === SESSION_STATUS.PENDING || this._status === SESSION_STATUS.CONNECTED) {
        this._setStatus(SESSION_STATUS.FAILED,
          `No answer from ${this._options.urlServer} within ${timeout / 1000} s`);
        ws.close();
      }
    }, timeout);
    ws.onopen = () => {
      this._setStatus(SESSION_STATUS.CONNECTED);
      this._send("connection", this._connectionObject());
    };
    ws.onmessage = (event) => this._onMessage(event.data);
    ws.onerror = () => {
      if (this._status === SESSION_STATUS.PENDING) {
        this._setStatus(SESSION_STATUS.FAILED,
          `Cannot reach the server at ${this._options.urlServer} ` +
          "(is it running, and is the URL and port right?)");
      }
    };
    ws.onclose = (event) => {
      clearTimeout(this._connectTimer);
      if (this._status === SESSION_STATUS.FAILED) {
        this._releaseAll(this._info);
        return;
      }
      let info = this._closeInfo || event.reason ||
        (event.code === 1000 ? "Closed" : `Connection lost (code ${event.code})`);
      if (this._status === SESSION_STATUS.PENDING) {
        info = `Cannot reach the server at ${this._options.urlServer}`;
        this._setStatus(SESSION_STATUS.FAILED, info);
      } else {
        this._setStatus(SESSION_STATUS.DISCONNECTED, info);
      }
      this._releaseAll(info);
    };
    return this;
  }

  disconnect() {
    this._closeInfo = this._closeInfo || "Disconnected by user";
    if (this._ws && this._ws.readyState <= 1) {
      this._ws.close(1000, "Disconnected by user");
    }
  }

  createCall(options) {
    if (this._status !== SESSION_STATUS.ESTABLISHED && this._status !== SESSION_STATUS.REGISTERED) {
      throw new Error(`Cannot create a call: the session is ${this._status}`);
    }
    const call = new Call(this, Object.assign({}, options));
    this._calls.set(call.id(), call);
    return call;
  }

  createStream(options) {
    if (this._status !== SESSION_STATUS.ESTABLISHED && this._status !== SESSION_STATUS.REGISTERED) {
      throw new Error(`Cannot create a stream: the session is ${this._status}`);
    }
    const stream = new Stream(this, Object.assign({}, options));
    this._streams.set(stream.id(), stream);
    return stream;
  }

  sendData(payload) {
    const operationId = uuid();
    this._send("sendData", { operationId, payload });
    return operationId;
  }

  _connectionObject() {
    const options = this._options;
    const sip = options.sipOptions || {};
    const object = {
      appKey: options.appKey || "defaultApp",
      mediaProviders: ["WebRTC"],
      keepAlive: options.keepAlive,
      authToken: options.authToken,
      clientVersion: "2.0",
      clientOSVersion: navigator.appVersion,
      clientBrowserVersion: navigator.userAgent,
      custom: options.custom,
    };
    if (options.sipOptions) {
      Object.assign(object, {
        sipLogin: sip.login,
        sipAuthenticationName: sip.authenticationName,
        sipPassword: sip.password,
        sipVisibleName: sip.visibleName,
        sipDomain: sip.domain,
        sipOutboundProxy: sip.outboundProxy,
        sipPort: sip.port === undefined || sip.port === null ? undefined : String(sip.port),
        sipRegisterRequired: Boolean(sip.registerRequired),
      });
    }
    for (const key of Object.keys(object)) {
      if (object[key] === undefined || object[key] === "") delete object[key];
    }
    return object;
  }

  _connected() {
    return Boolean(this._ws) && this._ws.readyState === WebSocket.OPEN;
  }

  _send(message, payload) {
    if (!this._connected()) {
      throw new Error(`Not connected to the server (${message} not sent)`);
    }
    this._ws.send(JSON.stringify({ message, data: [payload] }));
    this._emit("SENT", message, payload);
  }

  _setStatus(status, info = null) {
    if (info !== null) this._info = info;
    if (status === SESSION_STATUS.ESTABLISHED || status === SESSION_STATUS.FAILED ||
        status === SESSION_STATUS.DISCONNECTED) {
      clearTimeout(this._connectTimer);
    }
    this._status = status;
    this._emit(status, this, info);
    this._emit(STATUS_CHANGED, this, info);
  }

  _onMessage(raw) {
    if (typeof raw !== "string") return;  // binary frames are not part of the protocol
    let message;
    try {
      message = JSON.parse(raw);
    } catch (error) {
      console.warn("wcs.js: server sent invalid JSON", raw);
      return;
    }
    const data = Array.isArray(message.data) ? message.data : [];
    const obj = data[0] || {};
    this._emit("RECEIVED", message.message, data);
    switch (message.message) {
      case "ping":
        if (this._connected()) this._send("pong", null);
        break;
      case "getUserData":
        this._userData = obj;
        this._setStatus(SESSION_STATUS.ESTABLISHED, null);
        break;
      case "registered":
        this._setStatus(SESSION_STATUS.REGISTERED, null);
        break;
      case "fail":
        this._onFail(obj);
        break;
      case "setRemoteSDP":
        this._onRemoteSdp(data[0], data[1]);
        break;
      case "notifyIncomingCall":
        this._onIncomingCall(obj);
        break;
      case "notifyTryingResponse":
      case "ring":
      case "talk":
      case "hold":
      case "finish":
      case "busy":
        this._onCallStatus(obj);
        break;
      case "notifyTransferEvent": {
        const call = this._calls.get(obj.callId);
        if (call) call._emit(TRANSFER_EVENT, call, obj);
        break;
      }
      case "notifyDtmfEvent": {
        const call = this._calls.get(obj.callId);
        if (call) call._emit(DTMF_RECEIVED, call, obj);
        break;
      }
      case "notifyStreamStatusEvent": {
        const stream = this._streams.get(obj.mediaSessionId);
        if (stream) stream._onServerStatus(obj);
        break;
      }
      case "notifyStreamEvent": {
        const stream = this._streams.get(obj.mediaSessionId);
        if (stream) stream._emit(STREAM_EVENT, stream, obj);
        break;
      }
      case "OnDataEvent":
        this._emit(SESSION_STATUS.APP_DATA, this, obj);
        break;
      default:
        break;
    }
  }

  _onFail(obj) {
    const info = obj.info || "The server refused a request";
    const method = obj.apiMethod;
    if (method === "RegistrationStatusEvent") {
      this._closeInfo = `SIP registration failed: ${info}`;
    } else if (method === "ConnectionStatusEvent" || method === "connection") {
      this._closeInfo = `Connection refused: ${info}`;
    }
    if (STREAM_METHODS.has(method)) {
      const stream = (obj.id && this._streams.get(obj.id)) ||
        (obj.mediaSessionId && this._streams.get(obj.mediaSessionId)) ||
        this._latestPending(this._streams, STREAM_STATUS.PENDING);
      if (stream) stream._failLocally(info);
    } else if (CALL_METHODS.has(method)) {
      const call = (obj.callId && this._calls.get(obj.callId)) || this._latestUnsettledCall(method);
      if (call && (method === "call" || method === "answer" || method === "CallStatusEvent")) {
        call._failLocally(info);
        if (method === "answer") {
          try { this._send("hangup", { callId: call.id() }); } catch (error) { /* closed */ }
        }
      } else if (call) {
        call._info = info;
        call._emit("ERROR", call, obj);
      }
    }
    this._emit(SESSION_STATUS.WARN, this, obj);
  }

  _latestPending(map, status) {
    let found = null;
    for (const item of map.values()) if (item.status() === status) found = item;
    return found;
  }

  _latestUnsettledCall(method) {
    let found = null;
    for (const call of this._calls.values()) {
      if (method === "call" && call.status() === CALL_STATUS.PENDING && !call.isIncoming()) found = call;
      else if (method === "answer" && call.isIncoming() && call._answering) found = call;
      else if (method !== "call" && method !== "answer" && call._sentToServer) found = call;
    }
    return found;
  }

  _onRemoteSdp(id, sdp) {
    const target = this._streams.get(id) || this._calls.get(id);
    if (!target) {
      this._sdpCache.set(id, sdp);
      return;
    }
    target._applyRemoteSdp(sdp).catch((error) => {
      const info = `The server's SDP was refused by the browser: ${error.message}`;
      target._failLocally(info);
      try {
        if (target instanceof Call) this._send("hangup", { callId: id });
        else target.stop();
      } catch (ignored) { /* socket closed */ }
    });
  }

  _takeCachedSdp(id) {
    const sdp = this._sdpCache.get(id);
    this._sdpCache.delete(id);
    return sdp;
  }

  _onIncomingCall(obj) {
    if (this._calls.has(obj.callId)) {
      console.warn(`wcs.js: incoming call ${obj.callId} already exists`);
      return;
    }
    if (obj.mediaProvider && obj.mediaProvider !== "WebRTC") {
      console.warn(`wcs.js: incoming call with media provider ${obj.mediaProvider}`);
    }
    const call = new Call(this, {}, obj);
    this._calls.set(call.id(), call);
    this._emit(SESSION_STATUS.INCOMING_CALL, call);
  }

  _onCallStatus(obj) {
    const call = this._calls.get(obj.callId);
    if (call) call._onServerStatus(obj);
  }

  _forgetCall(call) {
    this._calls.delete(call.id());
    this._sdpCache.delete(call.id());
  }

  _forgetStream(stream) {
    this._streams.delete(stream.id());
  }

  _releaseAll(info) {
    for (const stream of this.getStreams()) stream._failLocally(`Session closed: ${info}`);
    for (const call of this.getCalls()) call._failLocally(`Session closed: ${info}`);
  }
}

/** Create a session and start connecting; listen with session.on(SESSION_STATUS.X, fn). */
export function createSession(options) {
  const session = new Session(options);
  // Connect on the next task so that the caller can attach its handlers first.
  setTimeout(() => session.connect(), 0);
  return session;
}
