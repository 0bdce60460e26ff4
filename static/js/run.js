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
    document.getElementById("controls-form")?.remove();
    liveEl.textContent = "";
  }
}

// --- backfills: progress, the chart of rows per second per batch, pause state ---
const batches = JSON.parse(document.getElementById("run-batches").textContent);
const MAX_BATCHES = 300;

function showProgress(p) {
  if (p.progress_done === null || p.progress_done === undefined) return;
  document.getElementById("backfill").hidden = false;
  const bar = document.getElementById("run-progress");
  bar.max = p.progress_total || Math.max(p.progress_done, 1);
  bar.value = p.progress_done;
  const parts = [`${p.progress_done.toLocaleString()}${p.progress_total ? " / " + p.progress_total.toLocaleString() : ""} rows`];
  if (p.progress_total) parts.push(`${Math.floor(100 * p.progress_done / p.progress_total)}%`);
  if (p.progress_rate) parts.push(`${Math.round(p.progress_rate).toLocaleString()} rows/s`);
  if (p.progress_total && p.progress_rate) {
    parts.push(`ETA ${Math.max(0, Math.round((p.progress_total - p.progress_done) / p.progress_rate))} s`);
  }
  document.getElementById("run-progress-text").textContent = parts.join(" · ");
}

function drawChart() {
  if (!batches.length) return;
  document.getElementById("backfill").hidden = false;
  const svg = document.getElementById("run-chart");
  const rates = batches.map((b) => (b.seconds > 0 ? b.rows / b.seconds : 0));
  const top = Math.max(...rates, 1);
  const x = (i) => (batches.length === 1 ? 300 : (600 * i) / (batches.length - 1));
  const y = (rate) => 115 - (110 * rate) / top;
  const points = rates.map((r, i) => `${x(i).toFixed(1)},${y(r).toFixed(1)}`).join(" ");
  const failed = batches.map((b, i) => (b.errors ? `<circle cx="${x(i).toFixed(1)}" cy="${y(rates[i]).toFixed(1)}" r="3" class="chart-error"/>` : "")).join("");
  svg.innerHTML = `<polyline points="${points}" class="chart-line"/>${failed}`;
  const errors = batches.filter((b) => b.errors).length;
  document.getElementById("run-errors").textContent = `${batches.length} batches shown, ${errors} failed.`;
}

function addBatches(more) {
  batches.push(...more);
  batches.splice(0, Math.max(0, batches.length - MAX_BATCHES));
  drawChart();
}

function showControls(c) {
  document.getElementById("run-paused").hidden = !c.paused;
  const toggle = document.querySelector("#controls-form button[value=pause], #controls-form button[value=resume]");
  if (toggle) {
    toggle.value = c.paused ? "resume" : "pause";
    toggle.textContent = c.paused ? "Resume" : "Pause";
    toggle.className = c.paused ? "primary" : "";
  }
  const reason = document.getElementById("run-pause-reason");
  if (reason) reason.textContent = c.pause_reason || "";
  else if (c.paused && c.pause_reason) document.getElementById("run-paused").textContent = `Paused: ${c.pause_reason}`;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/runs/${runId}/?after=${lastSeq}`);
  socket.onopen = () => { retryDelay = 500; if (!finished) liveEl.textContent = "Live"; };
  socket.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === "chunk") appendChunk(msg.seq, msg.text);
    else if (msg.type === "status") showStatus(msg);
    else if (msg.type === "progress") showProgress(msg);
    else if (msg.type === "batches") addBatches(msg.batches);
    else if (msg.type === "controls") showControls(msg);
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
showProgress(JSON.parse(document.getElementById("run-progress-data").textContent));
drawChart();
connect();
