// phone.js: the Phone demo page (connect with a SIP account, make and take calls).

import {
  CALL_STATUS, DTMF_RECEIVED, SESSION_STATUS, STATUS_CHANGED, TRANSFER_EVENT,
  createSession, defaultServerUrl, mediaUnavailableReason,
} from "./wcs.js";
import {
  $, EventLog, buildKeypad, initField, markNav, milliseconds, rememberFields, setBadge,
  setEnabled, showMessage,
} from "./ui.js";

const CONNECTION_FIELDS = ["urlServer", "sipLogin", "sipAuthenticationName", "sipPassword",
  "sipDomain", "sipOutboundProxy", "sipPort", "sipRegisterRequired"];
const ACTIVE = new Set([CALL_STATUS.ESTABLISHED, CALL_STATUS.HOLD]);

const state = { session: null, call: null, holdPending: false, statsTimer: null };
const log = new EventLog($("log"));
// For people poking at the page from the console (and for the browser tests).
window.phone = state;

function init() {
  markNav();
  const host = location.hostname || "127.0.0.1";
  initField("urlServer", defaultServerUrl());
  initField("sipLogin", "");
  initField("sipAuthenticationName", "");
  initField("sipPassword", "", { remember: false });
  initField("sipDomain", host);
  initField("sipOutboundProxy", host);
  initField("sipPort", "5060");
  initField("sipRegisterRequired", "false");
  initField("callee", "");
  initField("transferTarget", "");
  initField("dtmfType", "RFC2833");

  $("connectBtn").addEventListener("click", onConnectClick);
  $("connectionForm").addEventListener("submit", (event) => {
    event.preventDefault();
    onConnectClick();
  });
  $("callBtn").addEventListener("click", placeCall);
  $("callee").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !$("callBtn").disabled) placeCall();
  });
  $("answerBtn").addEventListener("click", answerCall);
  $("answerAlertBtn").addEventListener("click", answerCall);
  $("hangupBtn").addEventListener("click", hangupCall);
  $("declineAlertBtn").addEventListener("click", hangupCall);
  $("holdBtn").addEventListener("click", toggleHold);
  $("muteBtn").addEventListener("click", toggleMute);
  $("transferBtn").addEventListener("click", transferCall);
  $("clearLogBtn").addEventListener("click", () => { $("log").textContent = ""; });
  $("micSelect").addEventListener("change", changeMicrophone);
  $("speakerSelect").addEventListener("change", changeSpeaker);
  buildKeypad($("keypad"), sendDigit);

  const reason = mediaUnavailableReason();
  if (reason) showMessage($("callMessage"), reason, "bad");
  if (!("setSinkId" in HTMLMediaElement.prototype)) {
    $("speakerSelect").disabled = true;
    showMessage($("deviceMessage"), "This browser cannot choose the speaker (no setSinkId).", "info");
  }
  if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
    navigator.mediaDevices.addEventListener("devicechange", listDevices);
  }
  listDevices();
  updateControls();
}

// --- connection ------------------------------------------------------------------------------

function sessionActive() {
  const status = state.session && state.session.status();
  return Boolean(status) && status !== SESSION_STATUS.DISCONNECTED && status !== SESSION_STATUS.FAILED;
}

function onConnectClick() {
  if (sessionActive()) {
    state.session.disconnect();
    return;
  }
  connect();
}

function connect() {
  const url = $("urlServer").value.trim();
  const login = $("sipLogin").value.trim();
  const missing = [];
  if (!url) missing.push("WCS URL");
  if (!login) missing.push("SIP login");
  if (!$("sipDomain").value.trim()) missing.push("SIP domain");
  if (missing.length) {
    showMessage($("connectionMessage"), `Please fill in: ${missing.join(", ")}.`, "bad");
    return;
  }
  if (!/^wss?:\/\//i.test(url)) {
    showMessage($("connectionMessage"),
      `The WCS URL must start with ws:// or wss:// (for example ${defaultServerUrl()}).`, "bad");
    return;
  }
  rememberFields(CONNECTION_FIELDS.concat(["callee"]));
  const registerRequired = $("sipRegisterRequired").checked;
  const session = createSession({
    urlServer: url,
    appKey: "defaultApp",
    keepAlive: false,
    sipOptions: {
      login,
      authenticationName: $("sipAuthenticationName").value.trim() || undefined,
      password: $("sipPassword").value,
      domain: $("sipDomain").value.trim(),
      outboundProxy: $("sipOutboundProxy").value.trim() || undefined,
      port: $("sipPort").value.trim() || undefined,
      registerRequired,
    },
  });
  state.session = session;
  log.attach(session);
  log.add(`connecting to ${url} as ${login}${registerRequired ? " (register)" : ""}`);
  showMessage($("connectionMessage"), `Connecting to ${url}…`, "info");

  session.on(STATUS_CHANGED, (s, info) => {
    if (state.session !== session) return;
    setBadge($("sessionStatus"), s.status());
    updateControls();
  });
  session.on(SESSION_STATUS.ESTABLISHED, () => {
    if (registerRequired) {
      showMessage($("connectionMessage"),
        `Connected. Registering ${login}@${$("sipDomain").value.trim()}…`, "info");
    } else {
      showMessage($("connectionMessage"),
        `Connected as ${login} without SIP registration: calls go through this server ` +
        "(local mode) or its outbound proxy.", "good");
    }
    setCallText(state.call ? null : "Ready: enter a callee and press Call.");
  });
  session.on(SESSION_STATUS.REGISTERED, () => {
    showMessage($("connectionMessage"),
      `Registered as ${login}@${$("sipDomain").value.trim()}.`, "good");
    setCallText(state.call ? null : "Ready: enter a callee and press Call.");
  });
  session.on(SESSION_STATUS.WARN, (s, obj) => {
    const what = obj.apiMethod ? `${obj.apiMethod}: ` : "";
    log.add(`server warning: ${what}${obj.info}`, "err");
    if (obj.apiMethod === "RegistrationStatusEvent") {
      const hint = obj.status === "AUTHENTICATION_FAIL"
        ? " Check the SIP login, auth name and password." : "";
      showMessage($("connectionMessage"), `SIP registration failed: ${obj.info}.${hint}`, "bad");
    } else if (!CALL_API.has(obj.apiMethod)) {
      showMessage($("connectionMessage"), `The server refused ${what}${obj.info}`, "warn");
    }
  });
  session.on(SESSION_STATUS.FAILED, (s, info) => {
    showMessage($("connectionMessage"), info || "Connection failed.", "bad");
    setCallText("Not connected.");
  });
  session.on(SESSION_STATUS.DISCONNECTED, (s, info) => {
    const byUser = info === "Disconnected by user";
    const current = $("connectionMessage");
    if (byUser) {
      showMessage(current, "Disconnected.", "info");
    } else if (!current.classList.contains("bad") || !/registration failed/i.test(current.textContent)) {
      showMessage(current, `Disconnected by the server: ${info}`, "bad");
    }
    setCallText("Not connected.");
  });
  session.on(SESSION_STATUS.INCOMING_CALL, onIncomingCall);
  setBadge($("sessionStatus"), "PENDING");
  updateControls();
}

const CALL_API = new Set(["call", "answer", "hangup", "hold", "unhold", "sendDtmf", "transfer"]);

// --- calls -----------------------------------------------------------------------------------

function micConstraint() {
  const id = $("micSelect").value;
  return id ? { deviceId: { exact: id } } : true;
}

function placeCall() {
  const callee = $("callee").value.trim();
  if (!callee) {
    showMessage($("callMessage"), "Enter who to call: a SIP user (1002), user@host or a sip: URI.", "bad");
    return;
  }
  rememberFields(["callee"]);
  showMessage($("callMessage"), "");
  const call = state.session.createCall({
    callee,
    visibleName: $("sipLogin").value.trim(),
    constraints: { audio: micConstraint(), video: false },
    remoteAudio: $("remoteAudio"),
    stripCodecs: ["SILK"],
  });
  adoptCall(call);
  setCallText(`Calling ${callee}…`);
  call.call();
}

function onIncomingCall(call) {
  if (state.call) {
    log.add(`busy: declining a second call from ${call.caller()}`, "err");
    call.on(CALL_STATUS.RING, () => call.hangup());
    return;
  }
  adoptCall(call);
  const who = call.visibleName() && call.visibleName() !== call.caller()
    ? `${call.visibleName()} (${call.caller()})` : call.caller();
  $("incomingText").textContent = `Incoming call from ${who}`;
  $("incomingDetail").textContent = `to ${call.callee()}`;
  $("incomingAlert").classList.add("visible");
  setCallText(`Incoming call from ${who}`);
  log.add(`incoming call ${call.id()} from ${who}`);
}

function adoptCall(call) {
  state.call = call;
  state.holdPending = false;
  $("dtmfSent").textContent = "";
  $("dtmfReceived").textContent = "";
  setBadge($("transferStatus"), "");
  $("transferStatus").textContent = "";
  call.on(STATUS_CHANGED, onCallStatus);
  call.on(TRANSFER_EVENT, (c, obj) => {
    setBadge($("transferStatus"), obj.status);
    log.add(`transfer ${obj.status}${obj.info ? ": " + obj.info : ""}`);
    if (obj.status === "FAILED") {
      const sip = obj.sipStatus ? ` (SIP ${obj.sipStatus})` : "";
      showMessage($("callMessage"),
        `Transfer to ${obj.target || $("transferTarget").value} failed${obj.info ? ": " + obj.info : ""}${sip}; the call goes on.`,
        "bad");
    } else if (obj.status === "COMPLETED") {
      showMessage($("callMessage"), `Transferred to ${obj.target || $("transferTarget").value}.`, "good");
    }
  });
  call.on(DTMF_RECEIVED, (c, obj) => {
    $("dtmfReceived").textContent += obj.dtmf;
    log.add(`DTMF ${obj.dtmf} received (${obj.type || "?"})`);
  });
  call.on("ERROR", (c, obj) => {
    state.holdPending = false;
    showMessage($("callMessage"), `The server refused ${obj.apiMethod}: ${obj.info}`, "bad");
    updateControls();
  });
  setBadge($("callStatus"), call.status());
  updateControls();
}

function onCallStatus(call, obj) {
  if (state.call !== call) return;
  const status = call.status();
  setBadge($("callStatus"), status);
  const peer = call.isIncoming() ? call.caller() : call.callee();
  const sip = call.sipStatus() ? ` (SIP ${call.sipStatus()})` : "";
  switch (status) {
    case CALL_STATUS.PENDING:
      setCallText(`Starting the call to ${peer}…`);
      break;
    case CALL_STATUS.TRYING:
      setCallText(`Trying ${peer}…`);
      break;
    case CALL_STATUS.RING:
    case CALL_STATUS.RING_MEDIA:
    case CALL_STATUS.SESSION_PROGRESS:
      setCallText(call.isIncoming() ? `Incoming call from ${peer}: ringing` : `Ringing ${peer}…`);
      break;
    case CALL_STATUS.ESTABLISHED:
      state.holdPending = false;
      $("incomingAlert").classList.remove("visible");
      setCallText(`Talking with ${peer}`);
      showMessage($("callMessage"), "");
      startStats();
      listDevices();
      break;
    case CALL_STATUS.HOLD:
      state.holdPending = false;
      setCallText(`${peer} is on hold`);
      break;
    case CALL_STATUS.FINISH:
      setCallText(`Call with ${peer} ended${obj && obj.info ? ": " + obj.info : ""}`);
      break;
    case CALL_STATUS.BUSY:
      setCallText(`${peer} is busy${sip}`);
      showMessage($("callMessage"), `${peer} is busy${sip}.`, "warn");
      break;
    case CALL_STATUS.FAILED: {
      const info = (obj && obj.info) || call.getInfo() || "unknown reason";
      setCallText(`Call failed${sip}`);
      showMessage($("callMessage"), `Call ${call.isIncoming() ? "from" : "to"} ${peer} failed: ${info}${sip}`, "bad");
      break;
    }
    default:
      setCallText(`${status}`);
  }
  if ([CALL_STATUS.FINISH, CALL_STATUS.FAILED, CALL_STATUS.BUSY].includes(status)) {
    $("incomingAlert").classList.remove("visible");
    stopStats();
    state.call = null;
    state.lastCall = call;
    $("muteBtn").textContent = "Mute";
    $("muteBtn").classList.remove("toggled");
    $("muteBtn").setAttribute("aria-pressed", "false");
  }
  updateControls();
}

function answerCall() {
  const call = state.call;
  if (!call || !call.isIncoming()) return;
  $("incomingAlert").classList.remove("visible");
  setCallText(`Answering ${call.caller()}…`);
  state.answering = call;
  call.answer({ constraints: { audio: micConstraint(), video: false }, remoteAudio: $("remoteAudio"),
                stripCodecs: ["SILK"] });
  updateControls();
}

function hangupCall() {
  if (state.call) state.call.hangup();
}

function toggleHold() {
  const call = state.call;
  if (!call) return;
  try {
    if (call.status() === CALL_STATUS.HOLD) call.unhold();
    else call.hold();
    state.holdPending = true;
  } catch (error) {
    showMessage($("callMessage"), error.message, "bad");
  }
  updateControls();
}

function toggleMute() {
  const call = state.call;
  if (!call) return;
  if (call.isAudioMuted()) call.unmuteAudio();
  else call.muteAudio();
  const muted = call.isAudioMuted();
  $("muteBtn").textContent = muted ? "Unmute" : "Mute";
  $("muteBtn").classList.toggle("toggled", muted);
  $("muteBtn").setAttribute("aria-pressed", String(muted));
}

function sendDigit(digit) {
  const call = state.call;
  if (!call || !ACTIVE.has(call.status())) return;
  try {
    call.sendDTMF(digit, $("dtmfType").value);
    $("dtmfSent").textContent += digit;
  } catch (error) {
    showMessage($("callMessage"), error.message, "bad");
  }
}

function transferCall() {
  const call = state.call;
  const target = $("transferTarget").value.trim();
  if (!target) {
    showMessage($("callMessage"), "Enter a transfer target (SIP user or URI).", "bad");
    return;
  }
  try {
    call.transfer(target);
    setBadge($("transferStatus"), "PENDING");
    log.add(`transfer to ${target} requested`);
  } catch (error) {
    showMessage($("callMessage"), error.message, "bad");
  }
}

// --- devices ---------------------------------------------------------------------------------

async function listDevices() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
  let devices;
  try {
    devices = await navigator.mediaDevices.enumerateDevices();
  } catch (error) {
    return;
  }
  fillSelect($("micSelect"), devices.filter((d) => d.kind === "audioinput"), "Default microphone");
  fillSelect($("speakerSelect"), devices.filter((d) => d.kind === "audiooutput"), "Default speaker");
}

function fillSelect(select, devices, defaultLabel) {
  const chosen = select.value;
  select.textContent = "";
  select.appendChild(new Option(defaultLabel, ""));
  devices.forEach((device, index) => {
    if (!device.deviceId || device.deviceId === "default") return;
    const label = device.label || `${defaultLabel.replace("Default ", "")} ${index + 1}`;
    select.appendChild(new Option(label, device.deviceId));
  });
  select.value = Array.from(select.options).some((o) => o.value === chosen) ? chosen : "";
}

async function changeMicrophone() {
  if (!state.call || !state.call.getPeerConnection()) return;
  try {
    await state.call.setMicrophone($("micSelect").value);
    showMessage($("deviceMessage"), "Microphone switched.", "good");
  } catch (error) {
    showMessage($("deviceMessage"), `Cannot switch the microphone: ${error.message}`, "bad");
  }
}

async function changeSpeaker() {
  const id = $("speakerSelect").value;
  try {
    await $("remoteAudio").setSinkId(id);
    if (state.call) await state.call.setSpeaker(id);
    showMessage($("deviceMessage"), "");
  } catch (error) {
    showMessage($("deviceMessage"), `Cannot use that speaker: ${error.message}`, "bad");
  }
}

// --- statistics ------------------------------------------------------------------------------

function startStats() {
  if (state.statsTimer) return;
  const update = async () => {
    const call = state.call;
    if (!call) return;
    const stats = await call.getStats().catch(() => null);
    if (!stats || state.call !== call) return;
    const audio = stats.audio;
    $("statCodec").textContent = audio.codec || "—";
    $("statPacketsSent").textContent = audio.packetsSent;
    $("statPacketsReceived").textContent = audio.packetsReceived;
    $("statBytes").textContent = `${audio.bytesSent} / ${audio.bytesReceived}`;
    $("statPacketsLost").textContent = audio.packetsLost;
    $("statJitter").textContent = milliseconds(audio.jitter);
    $("statRtt").textContent = milliseconds(audio.rtt);
    const pc = call.getPeerConnection();
    $("iceState").textContent = pc ? `ICE ${pc.iceConnectionState}` : "";
  };
  update();
  state.statsTimer = setInterval(update, 1000);
}

function stopStats() {
  clearInterval(state.statsTimer);
  state.statsTimer = null;
  $("iceState").textContent = "";
}

// --- view ------------------------------------------------------------------------------------

function setCallText(text) {
  if (text !== null) $("callStatusText").textContent = text;
}

function updateControls() {
  const session = state.session;
  const status = session ? session.status() : SESSION_STATUS.DISCONNECTED;
  const active = sessionActive();
  const registerRequired = $("sipRegisterRequired").checked;
  const ready = status === SESSION_STATUS.REGISTERED ||
    (status === SESSION_STATUS.ESTABLISHED && !registerRequired);
  const call = state.call;
  const callStatus = call ? call.status() : null;
  const inCall = Boolean(call);
  const canMedia = !mediaUnavailableReason();

  for (const id of CONNECTION_FIELDS) $(id).disabled = active;
  $("connectBtn").textContent = active ? "Disconnect" : "Connect";
  $("connectBtn").className = active ? "secondary" : "";
  const incomingWaiting = inCall && call.isIncoming() &&
    (callStatus === CALL_STATUS.NEW || callStatus === CALL_STATUS.RING) && state.answering !== call;
  setEnabled({
    callBtn: ready && !inCall && canMedia,
    answerBtn: incomingWaiting && canMedia,
    answerAlertBtn: incomingWaiting && canMedia,
    declineAlertBtn: incomingWaiting,
    hangupBtn: inCall,
    holdBtn: inCall && ACTIVE.has(callStatus) && !state.holdPending,
    muteBtn: inCall && ACTIVE.has(callStatus),
    transferBtn: inCall && ACTIVE.has(callStatus),
    dtmfType: inCall && ACTIVE.has(callStatus),
  });
  $("holdBtn").textContent = callStatus === CALL_STATUS.HOLD ? "Unhold" : "Hold";
  $("holdBtn").classList.toggle("toggled", callStatus === CALL_STATUS.HOLD);
  for (const button of $("keypad").querySelectorAll("button")) {
    button.disabled = !(inCall && ACTIVE.has(callStatus));
  }
  if (!inCall && !$("callStatus").dataset.status) setBadge($("callStatus"), "NO CALL");
}

init();
