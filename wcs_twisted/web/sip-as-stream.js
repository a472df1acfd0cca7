// sip-as-stream.js: start a SIP call over REST with toStream, play it, push it to RTMP.

import {
  SESSION_STATUS, STATUS_CHANGED, STREAM_STATUS, createSession, defaultServerUrl, uuid,
} from "./wcs.js";
import {
  $, EventLog, buildKeypad, defaultRestUrl, initField, markNav, rememberFields, rest,
  setBadge, setEnabled, showMessage, showPlaying,
} from "./ui.js";

const POLL_MS = 2000;
const FIELDS = ["restUrl", "restUser", "sipLogin", "sipAuthenticationName", "sipDomain",
  "sipOutboundProxy", "sipPort", "sipRegisterRequired", "callee", "streamName", "urlServer",
  "rtmpUrl", "dtmfType"];
const ENDED = new Set(["FINISH", "FAILED", "BUSY"]);

const state = {
  callId: null, callStatus: null, pollTimer: null, session: null, stream: null, push: null,
};
const log = new EventLog($("log"));
window.sipAsStream = state;

function init() {
  markNav();
  const host = location.hostname || "127.0.0.1";
  initField("restUrl", defaultRestUrl());
  initField("restUser", "admin");
  initField("restPassword", "admin", { remember: false });
  initField("sipLogin", "");
  initField("sipAuthenticationName", "");
  initField("sipPassword", "", { remember: false });
  initField("sipDomain", host);
  initField("sipOutboundProxy", host);
  initField("sipPort", "5060");
  initField("sipRegisterRequired", "false");
  initField("callee", "");
  initField("streamName", `call_${Math.floor(Math.random() * 9000 + 1000)}`);
  initField("urlServer", defaultServerUrl());
  initField("rtmpUrl", `rtmp://${host}:1935/live`);
  initField("dtmfType", "RFC2833");
  $("startBtn").addEventListener("click", startCall);
  $("terminateBtn").addEventListener("click", terminateCall);
  $("playBtn").addEventListener("click", play);
  $("stopBtn").addEventListener("click", () => state.stream && state.stream.stop());
  $("pushBtn").addEventListener("click", startPush);
  $("pushStopBtn").addEventListener("click", stopPush);
  buildKeypad($("keypad"), sendDigit);
  updateControls();
}

function credentials() {
  return [$("restUrl").value.trim(), $("restUser").value, $("restPassword").value];
}

async function call(path, body) {
  const [base, user, password] = credentials();
  log.add(`→ POST ${path} ${JSON.stringify(body)}`, "out");
  try {
    const result = await rest(base, user, password, path, body);
    log.add(`← ${path} 200 ${result === null ? "(empty)" : JSON.stringify(result).slice(0, 300)}`, "in");
    return result;
  } catch (error) {
    log.add(`← ${error.message}`, "err");
    throw error;
  }
}

// --- the REST call ---------------------------------------------------------------------------

async function startCall() {
  const callee = $("callee").value.trim();
  const login = $("sipLogin").value.trim();
  const streamName = $("streamName").value.trim();
  const missing = [!login && "SIP login", !callee && "callee", !streamName && "stream name",
                   !$("restUrl").value.trim() && "REST URL"].filter(Boolean);
  if (missing.length) {
    showMessage($("callMessage"), `Please fill in: ${missing.join(", ")}.`, "bad");
    return;
  }
  rememberFields(FIELDS);
  const callId = uuid();
  const body = {
    callId,
    callee,
    toStream: streamName,
    hasAudio: "true",
    hasVideo: "false",
    visibleName: login,
    sipLogin: login,
    sipAuthenticationName: $("sipAuthenticationName").value.trim(),
    sipPassword: $("sipPassword").value,
    sipDomain: $("sipDomain").value.trim(),
    sipOutboundProxy: $("sipOutboundProxy").value.trim(),
    sipPort: $("sipPort").value.trim(),
    sipRegisterRequired: String($("sipRegisterRequired").checked),
  };
  for (const key of Object.keys(body)) if (body[key] === "") delete body[key];
  state.callId = callId;
  state.callStatus = "PENDING";
  state.everEstablished = false;
  setBadge($("callStatus"), "PENDING");
  $("dtmfSent").textContent = "";
  showMessage($("callMessage"), `Asking the server to call ${callee}…`, "info");
  updateControls();
  try {
    await call("/call/startup", body);
  } catch (error) {
    state.callId = null;
    setBadge($("callStatus"), "FAILED");
    showMessage($("callMessage"), `Cannot start the call: ${error.message}`, "bad");
    updateControls();
    return;
  }
  showMessage($("callMessage"), `Call ${callId.slice(0, 8)}… started; the stream will be "${streamName}".`, "info");
  poll();
}

async function poll() {
  clearTimeout(state.pollTimer);
  const callId = state.callId;
  if (!callId) return;
  let found;
  try {
    found = await rest(...credentials(), "/call/find", { callId });
  } catch (error) {
    if (state.callId !== callId) return;
    if (error.status === 404) {
      let text = null;
      if (!ENDED.has(state.callStatus)) {
        text = state.everEstablished ? "The call has ended."
          : "The call ended without being answered: the callee may not exist, be unreachable, " +
            "busy or have declined (the REST API keeps no record of why; see the server log).";
      }
      callEnded(text);
    } else {
      showMessage($("callMessage"), `Cannot read the call's status: ${error.message}`, "bad");
      state.pollTimer = setTimeout(poll, POLL_MS * 2);
    }
    return;
  }
  if (state.callId !== callId) return;
  const object = Array.isArray(found) ? found[0] : found;
  if (object && object.status && object.status !== state.callStatus) {
    state.callStatus = object.status;
    if (object.status === "ESTABLISHED") state.everEstablished = true;
    setBadge($("callStatus"), object.status);
    log.add(`call status ${object.status}${object.sipStatus ? " (SIP " + object.sipStatus + ")" : ""}`);
    describeCall(object);
  }
  if (object && ENDED.has(object.status)) {
    callEnded(null);
    return;
  }
  updateControls();
  state.pollTimer = setTimeout(poll, POLL_MS);
}

function describeCall(object) {
  const sip = object.sipStatus ? ` (SIP ${object.sipStatus})` : "";
  const text = {
    TRYING: [`Calling ${object.callee}…`, "info"],
    RING: [`${object.callee} is ringing…${sip}`, "info"],
    SESSION_PROGRESS: [`${object.callee}: session progress${sip}`, "info"],
    ESTABLISHED: [`Connected to ${object.callee}; the call is streaming as "${object.streamName || $("streamName").value}".`, "good"],
    HOLD: [`The call is on hold.`, "warn"],
    BUSY: [`${object.callee} is busy${sip}.`, "warn"],
    FAILED: [`The call failed${sip}${object.info ? ": " + object.info : ""}.`, "bad"],
    FINISH: ["The call has ended.", "info"],
  }[object.status];
  if (text) showMessage($("callMessage"), text[0], text[1]);
}

function callEnded(message) {
  clearTimeout(state.pollTimer);
  if (message) {
    showMessage($("callMessage"), message, state.everEstablished ? "info" : "bad");
    setBadge($("callStatus"), ENDED.has(state.callStatus) ? state.callStatus
      : (state.everEstablished ? "FINISH" : "FAILED"));
  }
  state.callId = null;
  updateControls();
}

async function terminateCall() {
  const callId = state.callId;
  if (!callId) return;
  try {
    await call("/call/terminate", { callId });
    showMessage($("callMessage"), "Terminating the call…", "info");
    poll();
  } catch (error) {
    showMessage($("callMessage"), `Cannot terminate: ${error.message}`, "bad");
    if (error.status === 404) callEnded(null);
  }
}

async function sendDigit(digit) {
  if (!state.callId) return;
  try {
    await call("/call/send_dtmf", { callId: state.callId, dtmf: digit, type: $("dtmfType").value });
    $("dtmfSent").textContent += digit;
  } catch (error) {
    showMessage($("callMessage"), `DTMF ${digit} not sent: ${error.message}`, "bad");
  }
}

// --- playing the stream ----------------------------------------------------------------------

function play() {
  const url = $("urlServer").value.trim();
  const name = $("streamName").value.trim();
  if (!/^wss?:\/\//i.test(url)) {
    showMessage($("playMessage"), `The WCS URL must start with ws:// or wss:// (for example ${defaultServerUrl()}).`, "bad");
    return;
  }
  if (!name) {
    showMessage($("playMessage"), "Enter the stream name first.", "bad");
    return;
  }
  rememberFields(FIELDS);
  const start = () => {
    const stream = state.session.createStream({ name, display: $("remoteVideo"),
                                                constraints: { audio: true, video: true } });
    state.stream = stream;
    stream.on(STATUS_CHANGED, () => {
      if (state.stream !== stream) return;
      const status = stream.status();
      setBadge($("streamStatus"), status);
      showPlaying($("videoBox"), $("remoteVideo"), status === STREAM_STATUS.PLAYING);
      if (status === STREAM_STATUS.PLAYING) showMessage($("playMessage"), `Playing "${name}".`, "good");
      if (status === STREAM_STATUS.FAILED) {
        showMessage($("playMessage"), `Cannot play "${name}": ${stream.getInfo() || "no reason given"}.`, "bad");
      }
      if (status === STREAM_STATUS.STOPPED) {
        showMessage($("playMessage"), `Stopped${stream.getInfo() ? ": " + stream.getInfo() : ""}.`, "info");
      }
      if (status === STREAM_STATUS.FAILED || status === STREAM_STATUS.STOPPED) state.stream = null;
      updateControls();
    });
    stream.play();
    updateControls();
  };
  const session = state.session;
  if (session && session.serverUrl() === url && session.status() === SESSION_STATUS.ESTABLISHED) {
    start();
    return;
  }
  if (session) session.disconnect();
  showMessage($("playMessage"), `Connecting to ${url}…`, "info");
  setBadge($("streamStatus"), "PENDING");
  const fresh = createSession({ urlServer: url });
  state.session = fresh;
  log.attach(fresh);
  fresh.on(SESSION_STATUS.ESTABLISHED, start);
  fresh.on(SESSION_STATUS.FAILED, (s, info) => {
    showMessage($("playMessage"), info || "Connection failed.", "bad");
    setBadge($("streamStatus"), "FAILED");
    updateControls();
  });
  fresh.on(SESSION_STATUS.DISCONNECTED, (s, info) => {
    if (state.session === fresh && info !== "Disconnected by user") {
      showMessage($("playMessage"), `Disconnected by the server: ${info}`, "bad");
    }
    updateControls();
  });
  updateControls();
}

// --- RTMP ------------------------------------------------------------------------------------

async function startPush() {
  const streamName = $("streamName").value.trim();
  const rtmpUrl = $("rtmpUrl").value.trim();
  if (!/^rtmps?:\/\//i.test(rtmpUrl)) {
    showMessage($("pushMessage"), "The RTMP URL must start with rtmp:// (for example rtmp://host:1935/live).", "bad");
    return;
  }
  rememberFields(FIELDS);
  setBadge($("pushStatus"), "PENDING");
  try {
    const result = await call("/push/startup", { streamName, rtmpUrl });
    state.push = result && result.mediaSessionId ? result : null;
    setBadge($("pushStatus"), "PUBLISHING");
    const name = (result && result.streamName) || `rtmp_${streamName}`;
    showMessage($("pushMessage"), `Pushing "${streamName}" to ${rtmpUrl}/${name}.`, "good");
  } catch (error) {
    setBadge($("pushStatus"), "FAILED");
    const hint = error.status === 404 && /No REST method/.test(error.message)
      ? " (this server has no RTMP push yet)" : "";
    showMessage($("pushMessage"), `Cannot push to RTMP: ${error.message}${hint}`, "bad");
  }
  updateControls();
}

async function stopPush() {
  if (!state.push) return;
  try {
    await call("/push/terminate", { mediaSessionId: state.push.mediaSessionId });
    setBadge($("pushStatus"), "STOPPED");
    showMessage($("pushMessage"), "RTMP push stopped.", "info");
    state.push = null;
  } catch (error) {
    showMessage($("pushMessage"), `Cannot stop the push: ${error.message}`, "bad");
  }
  updateControls();
}

// --- view ------------------------------------------------------------------------------------

function updateControls() {
  const inCall = Boolean(state.callId);
  const established = inCall && ["ESTABLISHED", "HOLD"].includes(state.callStatus);
  setEnabled({
    startBtn: !inCall,
    terminateBtn: inCall,
    playBtn: !state.stream,
    stopBtn: Boolean(state.stream),
    pushBtn: !state.push,
    pushStopBtn: Boolean(state.push),
    dtmfType: established,
  });
  for (const button of $("keypad").querySelectorAll("button")) button.disabled = !established;
}

init();
