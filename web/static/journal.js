// Journal page: save agenda and notes, sign off (seals it), append amendments.
import { api } from "/static/api.js";

const callId = document.getElementById("journal").dataset.call;
const error = document.getElementById("journal-error");
const on = (id, fn) => document.getElementById(id)?.addEventListener("click", () =>
  fn().then(() => location.reload()).catch((e) => { error.textContent = e.message; }));

on("save", () => api("POST", `/api/v1/journals/${callId}/notes`, {
  agenda: document.getElementById("agenda").value, notes: document.getElementById("notes").value }));
on("sign", async () => {
  await api("POST", `/api/v1/journals/${callId}/notes`, {
    agenda: document.getElementById("agenda").value, notes: document.getElementById("notes").value });
  await api("POST", `/api/v1/journals/${callId}/sign`);
});
on("amend", () => api("POST", `/api/v1/journals/${callId}/amend`, {
  reason: document.getElementById("reason").value, text: document.getElementById("amend-text").value }));
