// The issue pages: raise an issue; act on one (start, resolve, escalate, comment, reopen).
import { api } from "/static/api.js";

const error = document.getElementById("issue-error");
const raise = document.getElementById("raise");
if (raise) {
  raise.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = Object.fromEntries(new FormData(raise));
    if (!body.deadline) delete body.deadline;
    if (body.call_id) body.call_id = Number(body.call_id);
    try {
      const issue = await api("POST", "/api/v1/issues", body);
      location.href = `/issues/${issue.id}`;
    } catch (err) {
      error.textContent = err.message;
    }
  });
}
// The centre picker: grouped by town; typing narrows it to the names or codes that
// match (a town that matches keeps all its villages) and selects the first match.
const search = document.getElementById("centre-search");
const picker = document.getElementById("centre-picker");
if (search && picker) {
  search.addEventListener("input", () => {
    const q = search.value.trim().toLowerCase();
    const hit = (o) => !q || o.textContent.toLowerCase().includes(q) || o.value.includes(q);
    let first = null;
    for (const group of picker.querySelectorAll("optgroup")) {
      const whole = q && group.label.toLowerCase().includes(q);
      let any = false;
      for (const o of group.querySelectorAll("option")) {
        o.hidden = !(whole || hit(o));
        if (!o.hidden) { any = true; first = first || o; }
      }
      group.hidden = !any;
    }
    for (const o of picker.querySelectorAll(":scope > option")) {
      o.hidden = !hit(o);
      if (!o.hidden) first = first || o;
    }
    if (first) picker.value = first.value;
  });
}
// The screening ledger's period: half-month, month or any range, in Asia/Shanghai days.
const ledger = document.getElementById("ledger-period");
if (ledger) {
  const preset = document.getElementById("ledger-preset");
  const from = ledger.elements.from;
  const to = ledger.elements.to;
  const iso = (y, m, d) => `${y}-${String(m).padStart(2, "0")}-${String(d).padStart(2, "0")}`;
  const lastDay = (y, m) => new Date(Date.UTC(y, m, 0)).getUTCDate();  // m: 1-12
  const fill = () => {
    const [y, m, d] = new Date().toLocaleDateString("en-CA", { timeZone: "Asia/Shanghai" })
      .split("-").map(Number);
    const [py, pm] = m === 1 ? [y - 1, 12] : [y, m - 1];
    const ranges = {
      half: d <= 15 ? [iso(y, m, 1), iso(y, m, 15)] : [iso(y, m, 16), iso(y, m, lastDay(y, m))],
      prev_half: d <= 15 ? [iso(py, pm, 16), iso(py, pm, lastDay(py, pm))] : [iso(y, m, 1), iso(y, m, 15)],
      month: [iso(y, m, 1), iso(y, m, lastDay(y, m))],
      prev_month: [iso(py, pm, 1), iso(py, pm, lastDay(py, pm))],
    };
    const range = ranges[preset.value];
    if (range) [from.value, to.value] = range;
  };
  preset.addEventListener("change", fill);
  for (const input of [from, to]) input.addEventListener("input", () => { preset.value = "range"; });
  fill();
}
const box = document.getElementById("issue");
for (const button of document.querySelectorAll("button.act")) {
  button.addEventListener("click", async () => {
    const note = document.getElementById("note").value;
    try {
      await api("POST", `/api/v1/issues/${box.dataset.issue}/${button.dataset.action}`, { note });
      location.reload();
    } catch (err) {
      error.textContent = err.message;
    }
  });
}
