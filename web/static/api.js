// fetch() for the JSON API from pages: same-origin cookie + the page's CSRF token.
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
// A call page opened from a join link carries its token; it speaks for the centre.
export const joinToken = new URLSearchParams(location.search).get("token");

export async function api(method, url, body) {
  const init = { method, headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" };
  if (joinToken) init.headers.Authorization = `Bearer ${joinToken}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(url, init);
  const data = resp.headers.get("Content-Type")?.includes("json") ? await resp.json() : {};
  if (!resp.ok) throw new Error(data.message || `${resp.status} ${resp.statusText}`);
  return data;
}
