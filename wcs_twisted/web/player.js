// player.js: the Player demo page (play a stream by name).

import {
  SESSION_STATUS, STATUS_CHANGED, STREAM_STATUS, createSession, defaultServerUrl,
} from "./wcs.js";
import {
  $, EventLog, initField, markNav, rememberFields, setBadge, setEnabled, showMessage, showPlaying,
} from "./ui.js";

const PENDING_WARNING_MS = 15000;
const state = { session: null, stream: null, statsTimer: null, pendingTimer: null };
const log = new EventLog($("log"));
window.player = state;

function init() {
  markNav();
  initField("urlServer", defaultServerUrl());
  initField("streamName", "");
  $("playerForm").addEventListener("submit", (event) => {
    event.preventDefault();
    play();
  });
  $("stopBtn").addEventListener("click", stop);
  if (!window.RTCPeerConnection) {
    showMessage($("playerMessage"), "This browser has no WebRTC, so it cannot play streams.", "bad");
  }
  updateControls();
  if (new URLSearchParams(location.search).get("autoplay") === "true" && $("streamName").value) play();
}

function sessionUsable(url) {
  const session = state.session;
  return session && session.serverUrl() === url &&
    [SESSION_STATUS.ESTABLISHED, SESSION_STATUS.REGISTERED].includes(session.status());
}

function play() {
  const url = $("urlServer").value.trim();
  const name = $("streamName").value.trim();
  if (!url || !name) {
    showMessage($("playerMessage"), `Please fill in: ${[!url && "WCS URL", !name && "stream name"]
      .filter(Boolean).join(", ")}.`, "bad");
    return;
  }
  if (!/^wss?:\/\//i.test(url)) {
    showMessage($("playerMessage"),
      `The WCS URL must start with ws:// or wss:// (for example ${defaultServerUrl()}).`, "bad");
    return;
  }
  rememberFields(["urlServer", "streamName"]);
  if (sessionUsable(url)) {
    startStream(name);
    return;
  }
  if (state.session) state.session.disconnect();
  showMessage($("playerMessage"), `Connecting to ${url}…`, "info");
  const session = createSession({ urlServer: url, appKey: "defaultApp" });
  state.session = session;
  log.attach(session);
  session.on(SESSION_STATUS.ESTABLISHED, () => startStream(name));
  session.on(SESSION_STATUS.FAILED, (s, info) => {
    showMessage($("playerMessage"), info || "Connection failed.", "bad");
    setBadge($("streamStatus"), "FAILED");
    updateControls();
  });
  session.on(SESSION_STATUS.DISCONNECTED, (s, info) => {
    if (state.session !== session) return;
    if (info !== "Disconnected by user") {
      showMessage($("playerMessage"), `Disconnected by the server: ${info}`, "bad");
    }
    updateControls();
  });
  session.on(SESSION_STATUS.WARN, (s, obj) => {
    log.add(`server warning: ${obj.apiMethod ? obj.apiMethod + ": " : ""}${obj.info}`, "err");
  });
  setBadge($("streamStatus"), "PENDING");
  updateControls();
}

function startStream(name) {
  showMessage($("playerMessage"), `Asking the server for "${name}"…`, "info");
  const stream = state.session.createStream({
    name,
    display: $("remoteVideo"),
    constraints: { audio: true, video: true },
  });
  state.stream = stream;
  stream.on(STATUS_CHANGED, (s, obj) => onStreamStatus(s, obj));
  clearTimeout(state.pendingTimer);
  state.pendingTimer = setTimeout(() => {
    if (state.stream === stream && stream.status() === STREAM_STATUS.PENDING) {
      showMessage($("playerMessage"),
        `The server has not answered for ${PENDING_WARNING_MS / 1000} s; still waiting for "${name}".`,
        "warn");
    }
  }, PENDING_WARNING_MS);
  stream.play();
  updateControls();
}

function onStreamStatus(stream, obj) {
  if (state.stream !== stream) return;
  const status = stream.status();
  setBadge($("streamStatus"), status);
  const name = stream.name();
  switch (status) {
    case STREAM_STATUS.PLAYING:
      showMessage($("playerMessage"), `Playing "${name}".`, "good");
      showPlaying($("videoBox"), $("remoteVideo"), true);
      startStats();
      break;
    case STREAM_STATUS.FAILED:
      showMessage($("playerMessage"),
        `Cannot play "${name}": ${stream.getInfo() || "the server gave no reason"}.`, "bad");
      break;
    case STREAM_STATUS.STOPPED:
      showMessage($("playerMessage"),
        `Stopped${stream.getInfo() ? ": " + stream.getInfo() : ""}.`, "info");
      break;
    case STREAM_STATUS.PLAYBACK_PROBLEM:
      showMessage($("playerMessage"), `Playback problem: ${stream.getInfo() || "no media"}.`, "warn");
      break;
    default:
      break;
  }
  if ([STREAM_STATUS.FAILED, STREAM_STATUS.STOPPED].includes(status)) {
    clearTimeout(state.pendingTimer);
    stopStats();
    showPlaying($("videoBox"), $("remoteVideo"), false);
    state.stream = null;
    state.lastStream = stream;
  }
  updateControls();
}

function stop() {
  if (state.stream) state.stream.stop();
}

function startStats() {
  stopStats();
  state.statsTimer = setInterval(async () => {
    const stream = state.stream;
    if (!stream) return;
    const stats = await stream.getStats().catch(() => null);
    if (!stats) return;
    const video = $("remoteVideo");
    const size = video.videoWidth ? ` · ${video.videoWidth}×${video.videoHeight}` : "";
    $("streamStats").textContent =
      `audio ${stats.audio.packetsReceived} pkts${stats.audio.codec ? " " + stats.audio.codec : ""}` +
      ` · video ${stats.video.packetsReceived} pkts${stats.video.codec ? " " + stats.video.codec : ""}${size}`;
  }, 1000);
}

function stopStats() {
  clearInterval(state.statsTimer);
  state.statsTimer = null;
}

function updateControls() {
  const playing = Boolean(state.stream);
  const connecting = state.session && state.session.status() === SESSION_STATUS.PENDING;
  setEnabled({ playBtn: !playing && !connecting, stopBtn: playing,
               urlServer: !playing, streamName: !playing });
}

init();
