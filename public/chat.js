// The demo's chat page (/chat?room=NAME): one WebSocket to /ws/chat/NAME. What you type
// is sent as "name: text"; every message of the room (yours too) is appended below.
// Messages are shown with textContent, never as HTML: they come from anyone.
"use strict";

const params = new URLSearchParams(location.search);
const room = params.get("room") || "lobby";
const statusEl = document.getElementById("chat-status");
const messagesEl = document.getElementById("messages");
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
const url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws/chat/${encodeURIComponent(room)}`;
// Reconnect after a lost connection (a restart behind nginx sends 1001, Redis down 1013):
// 0.5 s, doubling up to 10 s; a connection that opened starts again from 0.5 s.
const RETRY_FIRST = 500;
const RETRY_MAX = 10000;
let retry = RETRY_FIRST;
let socket = null;
// The last text sent and not yet seen coming back from the room: a send the server
// refused (1013, the chat cannot publish) puts it back in the box, to send again.
let unconfirmed = null;

function show(text, kind) {
  const li = document.createElement("li");
  li.textContent = text;
  if (kind) li.className = kind;
  messagesEl.appendChild(li);
  li.scrollIntoView({ block: "nearest" });
}

function connect() {
  statusEl.textContent = "connecting…";
  const ws = new WebSocket(url);
  socket = ws;
  ws.addEventListener("open", () => {
    retry = RETRY_FIRST;
    statusEl.textContent = "connected";
  });
  ws.addEventListener("message", (e) => {
    if (typeof e.data !== "string") return;
    if (e.data === unconfirmed) unconfirmed = null;
    show(e.data);
  });
  ws.addEventListener("close", (e) => {
    socket = null;
    if (e.code === 1013 && unconfirmed !== null) {
      const text = unconfirmed.slice(unconfirmed.indexOf(": ") + 2);
      if (!input.value) input.value = nameInput.value.trim() ? text : unconfirmed;
      unconfirmed = null;
      show("not sent: the chat is unavailable; your text is back in the box, send it again", "error");
    }
    statusEl.textContent = `disconnected (${e.code}${e.reason ? ": " + e.reason : ""}); reconnecting…`;
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, RETRY_MAX);
  });
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = input.value.trim();
  if (!text || socket === null || socket.readyState !== WebSocket.OPEN) return;
  const name = nameInput.value.trim();
  unconfirmed = name ? `${name}: ${text}` : text;
  socket.send(unconfirmed);
  input.value = "";
});

if (roomProblem === null) {
  connect();
} else {
  statusEl.textContent = `not connected: ${roomProblem}; pick another room (?room=lobby)`;
  input.disabled = true;
  document.getElementById("chat-send").disabled = true;
}
