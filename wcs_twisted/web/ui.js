// ui.js: small helpers the demo pages share (form fields, messages, log, keypad, REST).

const query = new URLSearchParams(location.search);

/** `document.getElementById`, short. */
export const $ = (id) => document.getElementById(id);

/**
 * Fill an input from, in order: the page's query string (?id=value), what the user typed last
 * time on this page (localStorage; never passwords), or the default.
 */
export function initField(id, fallback = "", { remember = true } = {}) {
  const element = $(id);
  const key = `wcs-demo:${location.pathname}:${id}`;
  let value = query.get(id);
  if (value === null && remember) {
    try {
      value = localStorage.getItem(key);
    } catch (error) {
      value = null;
    }
  }
  if (value === null) value = fallback;
  if (element.type === "checkbox") {
    element.checked = value === true || value === "true" || value === "1" || value === "on";
  } else {
    element.value = value;
  }
  element.dataset.remember = remember && element.type !== "password" ? key : "";
  return element;
}

/** Save the current value of every remembered field (called when the user acts). */
export function rememberFields(ids) {
  for (const id of ids) {
    const element = $(id);
    const key = element.dataset.remember;
    if (!key) continue;
    try {
      localStorage.setItem(key, element.type === "checkbox" ? String(element.checked) : element.value);
    } catch (error) {
      /* storage disabled: nothing to remember */
    }
  }
}

/** Show a message in a .message element; kind is bad, warn, good or info; "" clears it. */
export function showMessage(element, text, kind = "info") {
  element.textContent = text || "";
  element.className = `message ${text ? kind : ""}`;
}

const BADGE_KIND = {
  ESTABLISHED: "good", REGISTERED: "good", PLAYING: "good", PUBLISHING: "good", TALKING: "good",
  CONNECTED: "info", PENDING: "info", TRYING: "info", RING: "info", RING_MEDIA: "info",
  SESSION_PROGRESS: "info", NEW: "info", HOLD: "warn", WARN: "warn", BUSY: "warn",
  FAILED: "bad", DISCONNECTED: "", FINISH: "", STOPPED: "", UNPUBLISHED: "",
};

/** Set a status badge's text and colour from a status name. */
export function setBadge(element, status) {
  element.textContent = status;
  element.className = `badge ${BADGE_KIND[status] ?? ""}`;
  element.dataset.status = status;
}

/** An event log panel: log.add(text, kind) with kind in, out or err. */
export class EventLog {
  constructor(element, limit = 300) {
    this.element = element;
    this.limit = limit;
  }

  add(text, kind = "") {
    const line = document.createElement("div");
    if (kind) line.className = kind;
    const time = new Date().toTimeString().slice(0, 8);
    line.textContent = `${time} ${text}`;
    this.element.appendChild(line);
    while (this.element.childElementCount > this.limit) this.element.firstChild.remove();
    this.element.scrollTop = this.element.scrollHeight;
  }

  /** Log every message a wcs.js session sends and receives (pings and pongs left out). */
  attach(session) {
    session.on("SENT", (name, payload) => {
      if (name !== "pong") this.add(`→ ${name} ${brief(payload)}`, "out");
    });
    session.on("RECEIVED", (name, data) => {
      if (name !== "ping") this.add(`← ${name} ${brief(data[0], data)}`, "in");
    });
  }
}

function brief(payload, data) {
  if (payload === null || payload === undefined) return "";
  if (typeof payload === "string") {
    // setRemoteSDP [id, sdp, isInitiator]
    return data && data.length > 1 ? `${payload} (SDP ${String(data[1]).length} bytes)` : payload;
  }
  const shown = {};
  for (const key of ["status", "info", "callId", "mediaSessionId", "name", "caller", "callee",
                     "sipLogin", "sipStatus", "apiMethod", "dtmf", "type", "target"]) {
    if (payload[key] !== undefined && payload[key] !== null) shown[key] = payload[key];
  }
  return JSON.stringify(shown);
}

/** Build a 12-key DTMF keypad in `container`; `onDigit(digit)` is called on each press. */
export function buildKeypad(container, onDigit) {
  for (const digit of "123456789*0#") {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = digit;
    button.dataset.digit = digit;
    button.setAttribute("aria-label", `DTMF ${digit}`);
    button.addEventListener("click", () => onDigit(digit));
    container.appendChild(button);
  }
  return Array.from(container.querySelectorAll("button"));
}

/** Enable or disable elements by id: setEnabled({call: true, hangup: false}). */
export function setEnabled(map) {
  for (const [id, enabled] of Object.entries(map)) $(id).disabled = !enabled;
}

/** The REST base of this server: the page's own origin + /rest-api. */
export function defaultRestUrl() {
  return `${location.origin}/rest-api`;
}

/** An Error for a failed REST request, with the status and the server's explanation. */
export class RestError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/**
 * POST a WCS REST method: rest(base, user, password, "/call/find", {callId}) -> parsed body
 * (null when empty).  Throws a RestError whose message says what went wrong and what to do.
 */
export async function rest(base, user, password, path, body) {
  const url = base.replace(/\/+$/, "") + path;
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Authorization: "Basic " + btoa(unescape(encodeURIComponent(`${user}:${password}`))),
      },
      body: JSON.stringify(body || {}),
      credentials: "omit",
    });
  } catch (error) {
    throw new RestError(0, `Cannot reach the REST API at ${url} (${error.message})`, null);
  }
  const text = await response.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      parsed = text;
    }
  }
  if (!response.ok) {
    const detail = parsed && typeof parsed === "object" && parsed.error
      ? parsed.error + (parsed.field ? ` (field ${parsed.field})` : "")
      : (typeof parsed === "string" && parsed ? parsed.slice(0, 200) : response.statusText);
    let message = `${path} failed: HTTP ${response.status} ${detail}`;
    if (response.status === 401) {
      message = `${path} refused: the REST user or password is wrong (HTTP 401). ` +
                "The login is admin / admin only on a loopback-only server; otherwise see " +
                "rest_password or the server's var/rest-password.";
    }
    throw new RestError(response.status, message, parsed);
  }
  return parsed;
}

/** Format a number of seconds as "12 ms" (RTT, jitter), or "—". */
export function milliseconds(seconds) {
  return typeof seconds === "number" ? `${Math.round(seconds * 1000)} ms` : "—";
}

/** Mark the nav link of the current page. */
export function markNav() {
  const page = location.pathname.split("/").pop() || "index.html";
  for (const link of document.querySelectorAll(".topbar nav a")) {
    if (link.getAttribute("href") === page) link.setAttribute("aria-current", "page");
  }
}

/** Show or hide a video box's "Nothing playing" caption and the video's controls. */
export function showPlaying(box, video, playing) {
  box.classList.toggle("playing", playing);
  video.controls = playing;
}
