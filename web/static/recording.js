// The call's recording on the call page: the mark every participant sees while the call
// is recorded, and the operator's start/stop button. No build step; plain ES module.
//
// Invariants:
// - The mark follows the server: GET …/recording when the page opens and every
//   REFRESH_MS, and each call-wide `recording` event call.js hands on (a `call-event`
//   on #call) as it arrives. The page never shows a mark the server has not confirmed.
// - Texts come from web/i18n.py through the element's data attributes and #call-text.
import { api } from "/static/api.js";

const root = document.getElementById("call");
const callId = root.dataset.call;
const mark = document.getElementById("rec-mark");
const toggle = document.getElementById("rec-toggle");
const errorBox = document.getElementById("call-error");
const logBox = document.getElementById("log");
const zh = document.documentElement.lang.startsWith("zh");
const TEXT = JSON.parse(document.getElementById("call-text").textContent);
const REFRESH_MS = 10000;
let on = false;

function show(recording) {
  on = recording;
  mark.hidden = !on;
  root.dataset.recording = on ? "1" : "0";
  if (toggle) toggle.textContent = on ? toggle.dataset.stop : toggle.dataset.start;
}

function log(text) {
  const item = document.createElement("li");
  const time = new Date().toLocaleTimeString(zh ? "zh-CN" : "en-GB", { timeZone: "Asia/Shanghai", hour12: false });
  item.textContent = `${time} ${text}`;
  logBox?.prepend(item);
}

async function refresh() {
  try {
    show((await api("GET", `/api/v1/calls/${callId}/recording`)).recording);
  } catch { /* the call ended or the link dropped: keep what is shown */ }
}

root.addEventListener("call-event", (e) => {
  const event = e.detail;
  if (event?.type !== "attendance") return;
  if (event.kind === "recording") {
    show(Boolean(event.data?.on));
    const key = event.data?.on ? "rec.on" : event.data?.reason === "disk full" ? "rec.disk_full" : "rec.off";
    log(TEXT.labels[key] ?? "");
  } else if (event.kind === "recorded") {
    log(`${TEXT.names[event.centre] ?? event.data?.participant ?? ""} ${TEXT.labels["rec.saved"] ?? ""}`);
  } else if (event.kind === "ended" || event.kind === "interrupted") {
    show(false);
  }
});

toggle?.addEventListener("click", () => {
  toggle.disabled = true;
  api("POST", `/api/v1/calls/${callId}/recording`, { on: !on })
    .then((state) => show(state.recording))
    .catch((err) => { errorBox.textContent = err.message; })
    .finally(() => { toggle.disabled = false; });
});

refresh();
setInterval(refresh, REFRESH_MS);
