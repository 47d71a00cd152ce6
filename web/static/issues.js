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
