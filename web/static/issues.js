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
