// Live events for the signed-in centre: reminders before a call, missed calls and
// their make-ups. Reconnects with back-off; shows each event as a toast.
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

function show(event) {
  const kind = say(KINDS[event.kind] || [event.kind, event.kind]);
  if (event.type === "slot_reminder") {
    toast(`${hhmm(event.start)} ${kind} ${say(["即将开始", "starts soon"])}`, `/rota/slots/${event.slot_id}`);
  } else if (event.type === "slot_missed") {
    const makeup = event.makeup_start
      ? say([`，补调度 ${event.makeup_start.slice(5, 16).replace("T", " ")}`, `; make-up ${event.makeup_start.slice(5, 16).replace("T", " ")}`])
      : say(["，本周无空档补调度", "; no room for a make-up this week"]);
    toast(`${kind} ${say(["未完成", "missed"])}${makeup}`, `/rota/slots/${event.makeup_slot_id || event.slot_id}`);
  }
}

let delay = 1000;
function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/events`);
  ws.onopen = () => { delay = 1000; };
  ws.onmessage = (msg) => {
    try { show(JSON.parse(msg.data)); } catch { /* not an event */ }
  };
  ws.onclose = () => { setTimeout(connect, delay); delay = Math.min(delay * 2, 30_000); };
}
connect();
