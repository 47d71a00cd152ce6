// Live events for the signed-in centre: reminders before a call, missed calls and
// their make-ups, rings. Reconnects with back-off; shows each event as a toast and
// re-announces it as a "dispatch-event" on window for the page's own scripts.
import { api } from "/static/api.js";

const zh = document.documentElement.lang.startsWith("zh");
const KINDS = {
  district_meeting: ["区级视频调度会", "District dispatch meeting"],
  district_inspection: ["区级视频调度", "District inspection"],
  town_patrol: ["镇级视频巡查", "Town patrol"],
  screening: ["矛盾纠纷排查调度会", "Dispute screening meeting"],
  supervision: ["督导调度", "Supervision dispatch"],
  spot_check: ["视频抽查", "Spot check"],
  makeup: ["补调度", "Make-up"],
};
const say = (pair) => (zh ? pair[0] : pair[1]);
const hhmm = (iso) => iso.slice(11, 16);

function toast(text, href) {
  const box = document.getElementById("live");
  if (!box) return;
  const item = document.createElement(href ? "a" : "div");
  item.className = "toast";
  item.textContent = text;
  if (href) item.href = href;
  box.append(item);
  setTimeout(() => item.remove(), 60_000);
}

const KIND_CALL = { inspection: ["视频调度", "Video dispatch"], meeting: ["视频调度会", "Dispatch meeting"] };

// The ring: accept opens the call page; decline or the deadline closes the panel.
function ring(event) {
  const box = document.getElementById("live");
  if (!box || document.getElementById(`ring-${event.call_id}`)) return;
  const panel = document.createElement("div");
  panel.className = "toast ring";
  panel.id = `ring-${event.call_id}`;
  panel.setAttribute("role", "alertdialog");
  const kind = say(KINDS[event.kind] || KIND_CALL[event.kind] || [event.kind, event.kind]);
  const text = document.createElement("p");
  text.textContent = `${event.caller_name} ${say(["来电", "is calling"])}：${kind}`;
  const accept = document.createElement("button");
  accept.textContent = say(["接听", "Accept"]);
  accept.className = "accept";
  const decline = document.createElement("button");
  decline.textContent = say(["拒绝", "Decline"]);
  decline.className = "decline";
  const answer = async (verb) => {
    accept.disabled = decline.disabled = true;
    try {
      await api("POST", `/api/v1/calls/${event.call_id}/${verb}`);
      if (verb === "accept") location.href = `/calls/${event.call_id}`;
    } catch (e) {
      text.textContent = e.message;
    }
    setTimeout(() => panel.remove(), verb === "accept" ? 0 : 3000);
  };
  accept.onclick = () => answer("accept");
  decline.onclick = () => answer("decline");
  panel.append(text, accept, " ", decline);
  box.append(panel);
  setTimeout(() => panel.remove(), event.deadline_seconds * 1000);
}

function show(event) {
  if (event.type === "call_ringing") return ring(event);
  const kind = say(KINDS[event.kind] || [event.kind, event.kind]);
  if (event.type === "slot_reminder") {
    // A page that connects late gets the reminders already sent: once per tab is enough.
    const seen = `reminded:${event.slot_id}`;
    if (sessionStorage.getItem(seen)) return;
    sessionStorage.setItem(seen, "1");
    toast(`${hhmm(event.start)} ${kind} ${say(["即将开始", "starts soon"])}`, `/rota/slots/${event.slot_id}`);
  } else if (event.type === "slot_missed") {
    const makeup = event.makeup_start
      ? say([`，补调度 ${event.makeup_start.slice(5, 16).replace("T", " ")}`, `; make-up ${event.makeup_start.slice(5, 16).replace("T", " ")}`])
      : say(["，本周无空档补调度", "; no room for a make-up this week"]);
    const what = event.held ? say(["有单位未参加", "missed by some centres"]) : say(["未完成", "missed"]);
    toast(`${kind} ${what}${makeup}`, `/rota/slots/${event.makeup_slot_id || event.slot_id}`);
  }
}

let delay = 1000;
function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/events`);
  ws.onopen = () => { delay = 1000; };
  ws.onmessage = (msg) => {
    let event;
    try { event = JSON.parse(msg.data); } catch { return; /* "pong" */ }
    show(event);
    // Pages that follow the centre's events (the console) listen for this; the hello
    // of a reconnected socket tells them to catch up on what they missed.
    window.dispatchEvent(new CustomEvent("dispatch-event", { detail: event }));
  };
  ws.onclose = () => { setTimeout(connect, delay); delay = Math.min(delay * 2, 30_000); };
}
connect();
