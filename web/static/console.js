// The operator console: the week's slots with "call now", an ad-hoc launcher over the
// operator's towns and villages, the week's coverage per town and village, and who is
// still to be reached today. Everything is drawn from GET /api/v1/console and drawn
// again whenever the centre's event socket (live.js) reports something.
import { api } from "/static/api.js";

const L = JSON.parse(document.getElementById("console-labels").textContent);
const zh = document.documentElement.lang.startsWith("zh");
const error = document.getElementById("console-error");
let data = JSON.parse(document.getElementById("console-data").textContent);

const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "class") node.className = value;
    else node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
};
const fmt = (template, ...values) => values.reduce((s, v) => s.replace("%d", v), template);
const when = (iso) => {
  const d = new Date(iso);
  const day = d.toLocaleDateString(zh ? "zh-CN" : "en-GB",
    { timeZone: "Asia/Shanghai", weekday: "short", month: "2-digit", day: "2-digit" });
  return `${day} ${iso.slice(11, 16)}`;
};
const badge = (state) => el("span", { class: `state state-${state}`, dataset: { state } }, L.state[state] || state);

async function launch(body, button) {
  if (button) button.disabled = true;
  error.textContent = "";
  try {
    const launched = await api("POST", "/api/v1/calls", body);
    location.href = `/calls/${launched.call.id}`;
  } catch (e) {
    error.textContent = e.message;
    if (button) button.disabled = false;
  }
}

function drawOpen() {
  const box = document.getElementById("open-calls");
  const list = box.querySelector("ul");
  list.replaceChildren(...data.open.map((call) => {
    const answered = call.invites.filter((i) => i.state === "answered").length;
    return el("li", { dataset: { call: call.id } },
      el("a", { href: `/calls/${call.id}`, class: "button" }, `${L.enter} #${call.id}`), " ",
      `${L.kind[call.kind] || call.kind} · ${L.call_state[call.state] || call.state} · `,
      `${L.answered} ${answered}/${call.invites.length}`);
  }));
  box.hidden = data.open.length === 0;
}

function drawProgress() {
  const p = data.progress;
  document.getElementById("progress-week").textContent = p.week;
  const pct = p.coverage_pct === null ? 0 : p.coverage_pct;
  document.querySelector("#progress .meter span").style.width = `${pct}%`;
  document.getElementById("progress-figures").textContent = p.exempt
    ? L.exempt
    : `${fmt(L.covered_of, p.covered, p.required)} (${p.coverage_pct === null ? "—" : p.coverage_pct}%)`;
  document.getElementById("progress-counts").replaceChildren(...Object.entries(p.counts)
    .filter(([, n]) => n > 0)
    .map(([state, n]) => el("span", { class: "count" }, badge(state), ` ${n}`)));
  const left = p.to_reach_today;
  document.getElementById("to-reach").replaceChildren(...(left.length
    ? left.map((c) => el("li", { dataset: { centre: c.code } }, `${c.name} `, badge(c.state),
        c.next_start ? el("small", { class: "muted" }, ` ${L.next} ${c.next_start.slice(11, 16)}`) : null))
    : [el("li", { class: "muted" }, L.nobody_left)]));
}

function drawSlots() {
  const rows = data.slots.map((s) => {
    const who = s.callee_text[zh ? "zh" : "en"];  // "翠屏街道及所辖20个村（社区）"
    const canCall = s.status === "planned" || s.status === "missed";
    const button = canCall
      ? el("button", { type: "button", class: "launch", dataset: { slot: s.id } }, L.call_now)
      : null;
    if (button) button.addEventListener("click", () => launch({ slot_id: s.id }, button));
    return el("tr", { class: s.today ? "today" : "", dataset: { slot: s.id } },
      el("td", {}, `${when(s.start)}–${s.end.slice(11, 16)}`),
      el("td", {}, String(s.console)),
      el("td", { title: s.callee_names.join("、") }, `${L.kind[s.kind] || s.kind}：${who}`),
      el("td", {}, L.status[s.status] || s.status),
      el("td", {}, button));
  });
  document.querySelector("#slots tbody").replaceChildren(...rows);
  document.getElementById("no-slots").hidden = rows.length > 0;
}

function drawCoverage() {
  const rows = [];
  for (const town of data.progress.towns) {
    const pct = town.coverage_pct === null ? 0 : town.coverage_pct;
    const details = el("details", {}, el("summary", {}, town.name),
      el("ul", { class: "centres" }, ...town.centres.map((c) =>
        el("li", { dataset: { centre: c.code, state: c.state } }, `${c.name} `, badge(c.state)))));
    rows.push(el("tr", { dataset: { town: town.code } },
      el("th", {}, details),
      el("td", {}, el("span", { class: "meter" }, el("span", { style: `width: ${pct}%` })),
        ` ${town.covered}/${town.required}`),
      ...["held", "reached", "ringing", "makeup", "pending", "missed"].map((s) =>
        el("td", { class: `state-${s}` }, town.counts[s] ? String(town.counts[s]) : ""))));
  }
  const body = document.querySelector("#coverage tbody");
  const open = new Set([...body.querySelectorAll("tr[data-town] details[open]")]
    .map((d) => d.closest("tr").dataset.town));
  body.replaceChildren(...rows);
  for (const row of body.querySelectorAll("tr[data-town]")) {
    if (open.has(row.dataset.town)) row.querySelector("details").open = true;
  }
}

// --- the ad-hoc launcher ---------------------------------------------------------------
const form = document.getElementById("adhoc-form");
const townSelect = form.elements.town;
const includeTown = form.querySelector(".include-town");
const villagesBox = form.querySelector(".villages");

function drawTree() {
  const chosen = townSelect.value;
  townSelect.replaceChildren(...data.tree.map((t) => el("option", { value: t.code }, t.name)));
  if (chosen && data.tree.some((t) => t.code === chosen)) townSelect.value = chosen;
  drawVillages();
}

function drawVillages() {
  const town = data.tree.find((t) => t.code === townSelect.value);
  includeTown.hidden = !town || town.self; // a town operator is the caller, not a callee
  if (includeTown.hidden) form.elements.include_town.checked = false;
  villagesBox.replaceChildren(...(town ? town.villages : []).map((v) =>
    el("label", {}, el("input", { type: "checkbox", name: "village", value: v.code }), ` ${v.name}`)));
}

townSelect.addEventListener("change", drawVillages);
form.addEventListener("click", (e) => {
  const pick = e.target.dataset && e.target.dataset.pick;
  if (!pick) return;
  for (const box of villagesBox.querySelectorAll("input")) box.checked = pick === "all";
});
form.addEventListener("submit", (e) => {
  e.preventDefault();
  const callees = [...villagesBox.querySelectorAll("input:checked")].map((b) => b.value);
  if (form.elements.include_town.checked) callees.unshift(townSelect.value);
  const kind = form.elements.kind.value;
  if (!callees.length) { error.textContent = L.pick_some; return; }
  if (kind === "inspection" && callees.length !== 1) { error.textContent = L.pick_one; return; }
  launch({ callees, kind }, form.querySelector("button[type=submit]"));
});

// --- live: redraw on every event of this centre (rings, answers, video, ends, misses) --
function draw() {
  drawOpen();
  drawProgress();
  drawSlots();
  drawCoverage();
}

let pending = null;
let busy = false;
async function refresh() {
  pending = null;
  if (busy) { pending = setTimeout(refresh, 250); return; }
  busy = true;
  try {
    data = await api("GET", "/api/v1/console");
    draw();
  } catch (e) {
    error.textContent = e.message;
  } finally {
    busy = false;
  }
}
window.addEventListener("dispatch-event", () => {
  if (!pending) pending = setTimeout(refresh, 150);
});

draw();
drawTree();
document.body.dataset.console = "ready";
