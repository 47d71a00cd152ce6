// The operator console: Launch rings the slot's centres and opens the call.
import { api } from "/static/api.js";

const error = document.getElementById("console-error");
for (const button of document.querySelectorAll("button.launch")) {
  button.addEventListener("click", async () => {
    button.disabled = true;
    error.textContent = "";
    try {
      const launched = await api("POST", "/api/v1/calls", { slot_id: Number(button.dataset.slot) });
      location.href = `/calls/${launched.call.id}`;
    } catch (e) {
      error.textContent = e.message;
      button.disabled = false;
    }
  });
}
