// The demo's chat page (/chat?room=NAME&name=ME): one WebSocket to
// /ws/chat/NAME?name=ME. What you type is sent as plain text; the server sends JSON frames,
// each with its position "id": chat messages {"id", "from", "text"} (appended below as
// "from: text"), presence frames {"id", "type": "join" | "leave", "from"} (the "online"
// list is refreshed from /chat/NAME/who), and {"id", "type": "reset"} when messages were
// lost for good. After a drop the page reconnects by itself with &since=<last id seen>,
// so it shows what it missed, once each and in order.
// Messages are shown with textContent, never as HTML: they come from anyone.
"use strict";

const params = new URLSearchParams(location.search);
const room = params.get("room") || "lobby";
const statusEl = document.getElementById("chat-status");
const messagesEl = document.getElementById("messages");
const whoEl = document.getElementById("who");
const form = document.getElementById("chat-form");
const input = document.getElementById("chat-input");
const nameInput = document.getElementById("chat-name");
document.getElementById("room").textContent = room;
document.title = `${room} · hump_listener chat`;
nameInput.value = params.get("name") || `guest-${Math.floor(Math.random() * 9000) + 1000}`;

// A room is one path segment of at most 64 characters (the server's CHAT_MAX_ROOM): a
// name with a "/" can never match /ws/chat/{room}, so the page refuses it instead of
// reconnecting to a 404 for ever.
const ROOM_MAX = 64;
const roomProblem = room.includes("/") ? 'a room name cannot contain "/"'
  : room.length > ROOM_MAX ? `a room name has at most ${ROOM_MAX} characters` : null;
const base = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}`;
const roomPath = `/chat/${encodeURIComponent(room)}`;
// Reconnect after a lost connection (a restart behind nginx sends 1001, Redis down 1013):
// 0.5 s, doubling up to 10 s; a connection that opened starts again from 0.5 s.
const RETRY_FIRST = 500;
const RETRY_MAX = 10000;
// The online list is refreshed on each join/leave frame and this often (a crashed
// server's connections leave no "leave" frame: they expire from the list).
const WHO_EVERY = 15000;
let retry = RETRY_FIRST;
let socket = null;
// The position ("epoch-offset") of the last frame shown: where a reconnection resumes.
let lastId = null;
// The last text sent and not yet seen coming back from the room: a send the server
// refused (1013, the chat cannot publish) puts it back in the box, to send again.
let unconfirmed = null;
// For tests and the console: chat.socket, and chat.offline = true to stay away.
const chat = { get socket() { return socket; }, offline: false, get lastId() { return lastId; } };
window.chat = chat;

function show(text, kind) {
  const li = document.createElement("li");
  li.textContent = text;
  if (kind) li.className = kind;
  messagesEl.appendChild(li);
  li.scrollIntoView({ block: "nearest" });
}

function parseId(id) {
  const dash = id.lastIndexOf("-");
  return { epoch: id.slice(0, dash), offset: Number(id.slice(dash + 1)) };
}

// A frame already shown (a replay overlapping what arrived live): never twice.
function seen(id) {
  if (lastId === null) return false;
  const a = parseId(id), b = parseId(lastId);
  return a.epoch === b.epoch && a.offset <= b.offset;
}

async function refreshWho() {
  try {
    const r = await fetch(`${roomPath}/who`);
    if (r.ok) whoEl.textContent = (await r.json()).join(", ") || "nobody";
  } catch (e) {
    // offline: the next refresh tries again
  }
}

function onFrame(frame) {
  if (frame.type === "reset") {
    if (lastId !== null) show("some messages were lost (the history did not keep them)", "notice");
    lastId = frame.id;
    return;
  }
  if (seen(frame.id)) return;
  lastId = frame.id;
  if ("text" in frame) {
    if (frame.from === nameInput.value.trim() && frame.text === unconfirmed) unconfirmed = null;
    show(`${frame.from}: ${frame.text}`);
  } else if (frame.type === "join" || frame.type === "leave") {
    refreshWho();
  }
}

function connect() {
  if (chat.offline) {
    statusEl.textContent = "offline";
    setTimeout(connect, 100);
    return;
  }
  statusEl.textContent = "connecting…";
  const query = new URLSearchParams({ name: nameInput.value.trim() });
  if (lastId !== null) query.set("since", lastId);
  const ws = new WebSocket(`${base}/ws${roomPath}?${query}`);
  socket = ws;
  ws.addEventListener("open", () => {
    retry = RETRY_FIRST;
    statusEl.textContent = "connected";
    refreshWho();
  });
  ws.addEventListener("message", (e) => {
    if (typeof e.data === "string") onFrame(JSON.parse(e.data));
  });
  ws.addEventListener("close", (e) => {
    if (socket === ws) socket = null;
    if (e.code === 1013 && unconfirmed !== null && e.reason.includes("unavailable")) {
      if (!input.value) input.value = unconfirmed;
      unconfirmed = null;
      show("not sent: the chat is unavailable; your text is back in the box, send it again", "error");
    }
    statusEl.textContent = `disconnected (${e.code}${e.reason ? ": " + e.reason : ""}); reconnecting…`;
    setTimeout(connect, ws.renamed ? 0 : retry);
    if (!ws.renamed) retry = Math.min(retry * 2, RETRY_MAX);
  });
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = input.value.trim();
  if (!text || socket === null || socket.readyState !== WebSocket.OPEN) return;
  unconfirmed = text;
  socket.send(text);
  input.value = "";
});

// A new name: reconnect as it (resuming, so nothing is missed meanwhile).
nameInput.addEventListener("change", () => {
  if (socket !== null) {
    socket.renamed = true;
    socket.close(1000, "renamed");
  }
});

if (roomProblem === null) {
  connect();
  setInterval(refreshWho, WHO_EVERY);
} else {
  statusEl.textContent = `not connected: ${roomProblem}; pick another room (?room=lobby)`;
  input.disabled = true;
  document.getElementById("chat-send").disabled = true;
}
