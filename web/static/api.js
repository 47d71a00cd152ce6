// fetch() for the JSON API from pages: same-origin cookie + the page's CSRF token.
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

export async function api(method, url, body) {
  const init = { method, headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(url, init);
  const data = resp.headers.get("Content-Type")?.includes("json") ? await resp.json() : {};
  if (!resp.ok) throw new Error(data.message || `${resp.status} ${resp.statusText}`);
  return data;
}
