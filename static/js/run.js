// Run page: renders the log tail, then follows the run over its WebSocket.
// Each chunk carries a sequence number; a reconnect asks for what follows the last one shown.
import { AnsiUp } from "../vendor/ansi_up-6.0.6/ansi_up.js";

const runId = document.getElementById("run-script").dataset.runId;
const logEl = document.getElementById("log");
const liveEl = document.getElementById("live-state");
const ansi = new AnsiUp();
let lastSeq = 0;
let finished = false;
let retryDelay = 500;

function nearBottom() {
  return window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
}

function appendChunk(seq, text) {
  if (seq <= lastSeq) return;
  const follow = nearBottom();
  logEl.insertAdjacentHTML("beforeend", ansi.ansi_to_html(text)); // ansi_up escapes HTML
  lastSeq = seq;
  if (follow) window.scrollTo(0, document.body.scrollHeight);
}

function formatBytes(n) {
  const units = ["bytes", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i === 0 ? `${n} bytes` : `${n.toFixed(1)} ${units[i]}`;
}

function showStatus(s) {
  const el = document.getElementById("run-status");
  el.textContent = s.status_display;
  el.className = `status status-${s.status}`;
  document.getElementById("run-detail").textContent = s.detail || "";
  document.getElementById("run-exit-code").textContent = s.exit_code ?? "—";
  if (s.duration !== null) document.getElementById("run-duration").textContent = `${s.duration.toFixed(1)} s`;
  document.getElementById("run-output-bytes").textContent = formatBytes(s.output_bytes);
  if (s.status !== "awaiting_approval") document.getElementById("approval-waiting")?.remove();
  finished = s.finished;
  if (finished) {
    document.getElementById("cancel-form")?.remove();
    liveEl.textContent = "";
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/runs/${runId}/?after=${lastSeq}`);
  socket.onopen = () => { retryDelay = 500; if (!finished) liveEl.textContent = "Live"; };
  socket.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === "chunk") appendChunk(msg.seq, msg.text);
    else if (msg.type === "status") showStatus(msg);
  };
  socket.onclose = () => {
    if (finished) return;
    liveEl.textContent = "Connection lost; reconnecting…";
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 10000);
  };
}

for (const chunk of JSON.parse(document.getElementById("run-tail").textContent)) {
  appendChunk(chunk.seq, chunk.text);
}
showStatus(JSON.parse(document.getElementById("run-status-data").textContent));
connect();
