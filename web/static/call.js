// A call in the browser: the operator's live grid or a centre's own view.
// Protocol: web/PROTOCOL.md. No build step; plain ES module.
//
// Invariants:
// - One current peer connection (`state.pc`, numbered `state.generation`); callbacks
//   of an older one are ignored. Any failure of it — failed, closed, disconnected for
//   2 s — makes a new peer with a new offer (aiortc has no ICE restart).
// - A tile shows a video label (视频正常, 已核验, …) only while its <video> is bound
//   to the current connection's track and that track's frames advance; otherwise it
//   says 重新连接中 / 画面中断 and shows no picture rather than a frozen one.
// - Labels are the call's events (the event socket), reset from the server's record
//   (GET …/media) after every reconnect of either the peer or the socket.
// - On `pagehide` the page tells the server it is gone (a beacon with the connection's
//   leave token) and hangs up, so a closed tab is recorded left at once.
import { api, joinToken } from "/static/api.js";

const root = document.getElementById("call");
const callId = root.dataset.call;
const operator = root.dataset.role === "operator";
const me = root.dataset.me;
const zh = document.documentElement.lang.startsWith("zh");
const say = (pair) => (zh ? pair[0] : pair[1]);
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
const errorBox = document.getElementById("call-error");
const logBox = document.getElementById("log");
const grid = document.querySelector(".grid.gallery");

const TEXT = {
  rang: ["呼叫中", "ringing"], answered: ["已接听", "answered"], declined: ["已拒绝", "declined"],
  not_answered: ["未接听", "not answered"], joined: ["已入会", "joined"], left: ["已离开", "left"],
  live: ["视频正常", "live"], black: ["黑屏", "black"], frozen: ["画面冻结", "frozen"],
  verified: ["视频已核验", "video verified"], ended: ["调度已结束", "call ended"],
  interrupted: ["调度已中断", "call interrupted"], snapshot: ["已截图", "snapshot taken"],
  floor: ["点名发言", "floor given"],
};
const CONN = {
  connecting: root.dataset.tConnecting, reconnecting: root.dataset.tReconnecting,
  stalled: root.dataset.tStalled,
};
const CAMERA = {
  NotAllowedError: ["摄像头或麦克风被拒绝：请在浏览器地址栏旁允许本网站使用摄像头和麦克风，然后刷新页面。",
    "The camera or microphone was refused: allow this site to use them (next to the address bar), then reload."],
  NotFoundError: ["未找到摄像头或麦克风：请接好设备后刷新页面。", "No camera or microphone was found: connect one, then reload."],
  NotReadableError: ["摄像头或麦克风正被其他程序使用：请关闭该程序后刷新页面。",
    "The camera or microphone is in use by another program: close it, then reload."],
};
const STATUS_KINDS = ["rang", "answered", "declined", "not_answered", "joined", "left"];
const DISCONNECTED_MS = 2000; // "disconnected" this long: give up on the peer
const STALLED_MS = 2500; // a bound track without a new frame this long has no picture
const DEAD_MS = 3500; // no frame on any bound track this long: the peer is dead (the
// server sends every slot at least a black frame a second)
const WATCH_MS = 1000;
const GUARD_MS = 250;

const state = {
  slots: Number(root.dataset.slots || 0),
  ended: false,
  hidden: false, // after pagehide: nothing reconnects
  pc: null,
  generation: 0,
  stream: null, // the local camera, kept across reconnects
  leaveToken: "",
  reconnecting: false,
  retries: 0,
  disconnectTimer: null,
  ws: null,
};
const labels = new Map(); // centre -> {status, video, faces, verified}, from the call's events
let floorHolder = null;
let pinned = null;
let buffered = null; // events that arrive while labels are being refreshed

function log(text) {
  const item = document.createElement("li");
  item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  logBox.prepend(item);
}

function fail(text) {
  errorBox.textContent = text;
}

async function camera() {
  // Camera and microphone; if one is missing, carry on with the other and say so.
  const attempts = [{ video: { width: 640, height: 360 }, audio: true }, { video: true }, { audio: true }];
  let first = null;
  for (const constraints of attempts) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia(constraints);
      if (first) fail(say(CAMERA[first.name] || [first.message, first.message]));
      return stream;
    } catch (e) {
      first = first || e;
      if (e.name === "NotAllowedError") break;
    }
  }
  fail(say(CAMERA[first?.name] || [`无法打开摄像头：${first?.message}`, `Cannot open the camera: ${first?.message}`]));
  return new MediaStream();
}

function gathered(peer) {
  // aiortc takes no trickled candidates: send the offer once gathering is complete.
  if (peer.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (peer.iceGatheringState === "complete") resolve(); };
    peer.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 3000);
  });
}

// --- tiles: what each shows and says ----------------------------------------------------

function mediaTiles() {
  return [...document.querySelectorAll(operator ? ".tile[data-centre]" : ".tile[data-peer]")];
}

function tileOf(centre) {
  return document.querySelector(`.tile[data-centre="${centre}"]`);
}

function labelOf(centre) {
  if (!labels.has(centre)) labels.set(centre, { status: "", video: "", faces: 0, verified: false });
  return labels.get(centre);
}

function setText(element, text) {
  if (element && element.textContent !== text) element.textContent = text;
}

function paint(tile) {
  const conn = tile.dataset.conn || "ok";
  const overlay = tile.querySelector(".conn");
  if (overlay) {
    overlay.hidden = conn === "ok";
    setText(overlay, CONN[conn === "waiting" ? (state.generation > 1 ? "reconnecting" : "connecting") : conn] || "");
  }
  const centre = tile.dataset.centre;
  if (!centre) return;
  const label = labels.get(centre);
  const picture = conn === "ok"; // the tile's video is the current connection's and moving
  if (label?.status) setText(tile.querySelector(".status"), say(TEXT[label.status]));
  const video = tile.querySelector(".video");
  setText(video, picture && label?.video ? say(TEXT[label.video] || TEXT.black) : "");
  video.dataset.state = picture ? label?.video || "" : "";
  setText(tile.querySelector(".faces"),
    picture && label?.faces ? say([`在岗 ${label.faces} 人`, `faces ${label.faces}`]) : "");
  setText(tile.querySelector(".verified"), picture && label?.verified ? say(TEXT.verified) : "");
  tile.classList.toggle("focus", centre === (pinned || floorHolder));
}

function paintAll() {
  for (const tile of mediaTiles()) paint(tile);
  fit();
}

function setConn(tile, conn) {
  if (tile.dataset.conn !== conn) {
    tile.dataset.conn = conn;
    paint(tile);
  }
}

// Binds a tile's <video> (and <audio>) to a receiver's tracks of the current connection.
function bind(tile, videoTrack, audioTrack) {
  const video = tile.querySelector("video");
  if (tile.bound?.video === videoTrack && video.srcObject) return;
  video.srcObject = new MediaStream([videoTrack]);
  video.play().catch(() => {});
  const audio = tile.querySelector("audio");
  if (audio) {
    audio.srcObject = audioTrack ? new MediaStream([audioTrack]) : null;
    audio.play().catch(() => {});
  }
  tile.bound = { video: videoTrack, frames: 0, at: performance.now(), generation: state.generation };
  tile.dataset.generation = String(state.generation);
  setConn(tile, "waiting");
}

function unbind(tile, conn) {
  tile.bound = null;
  for (const media of tile.querySelectorAll("video, audio")) media.srcObject = null;
  setConn(tile, conn);
}

// The grid: as many columns as let every tile fit the window, never narrower than
// MIN_TILE; the floor holder or a pinned tile takes 2x2 cells.
const MIN_TILE = 176;
const GAP = 8;
function fit() {
  if (!grid) return;
  const tiles = grid.querySelectorAll(".tile");
  const focus = grid.querySelector(".tile.focus") ? 3 : 0;
  const cells = tiles.length + focus;
  const width = grid.clientWidth;
  const sample = grid.querySelector(".tile[data-centre]") || tiles[0];
  const chrome = sample ? sample.offsetHeight - sample.querySelector("video").offsetHeight : 60;
  const room = Math.max(320, innerHeight - grid.getBoundingClientRect().top - 70);
  let cols = 1;
  for (let c = 1; c <= cells; c++) {
    const w = (width - GAP * (c - 1)) / c;
    if (w < MIN_TILE && c > 1) break;
    cols = c;
    const rows = Math.ceil(cells / c);
    if (rows * (w * 9 / 16 + chrome) + GAP * (rows - 1) <= room) break;
  }
  if (focus && cols < 4) cols = Math.min(Math.max(cols, 2), Math.floor((width + GAP) / (MIN_TILE + GAP)) || 1);
  grid.style.setProperty("--cols", String(cols));
  grid.dataset.cols = String(cols);
}

// --- the peer connection ----------------------------------------------------------------

function receiving(pc, kind) {
  return pc.getTransceivers().filter((t) => t.receiver.track.kind === kind
    && ["recvonly", "sendrecv"].includes(t.currentDirection));
}

async function connect() {
  const generation = ++state.generation;
  const old = state.pc;
  state.pc = null;
  if (old) old.close();
  if (!state.stream) {
    state.stream = await camera();
    document.getElementById("self").srcObject = state.stream;
  }
  const stream = state.stream;
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
  state.pc = pc;
  window.dispatchPeer = pc; // for tests: getStats()
  const [video] = stream.getVideoTracks();
  const [audio] = stream.getAudioTracks();
  if (operator) {
    if (video) pc.addTransceiver(video, { direction: "sendonly", streams: [stream] });
    if (audio) pc.addTransceiver(audio, { direction: "sendonly", streams: [stream] });
    for (let i = 0; i < state.slots; i++) {
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.addTransceiver("audio", { direction: "recvonly" });
    }
  } else {
    // Slot 0 (the operator) rides on the camera's m-lines; slot 1 is the floor.
    if (video) pc.addTransceiver(video, { direction: "sendrecv", streams: [stream] });
    else pc.addTransceiver("video", { direction: "recvonly" });
    if (audio) pc.addTransceiver(audio, { direction: "sendrecv", streams: [stream] });
    else pc.addTransceiver("audio", { direction: "recvonly" });
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
  }
  pc.addEventListener("connectionstatechange", () => onPeerState(pc, generation));
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  if (generation !== state.generation) return;
  const answer = await api("POST", `/api/v1/calls/${callId}/sdp`, { type: "offer", sdp: pc.localDescription.sdp });
  if (generation !== state.generation) return;
  state.leaveToken = answer.leave_token || "";
  await pc.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
  state.reconnecting = false;
  await attach();
}

function onPeerState(pc, generation) {
  if (generation !== state.generation || state.ended || state.hidden) return;
  const now = pc.connectionState;
  clearTimeout(state.disconnectTimer);
  if (now === "connected") {
    state.retries = 0;
  } else if (now === "disconnected") {
    state.disconnectTimer = setTimeout(() => {
      if (generation === state.generation && pc.connectionState === "disconnected") reconnect("disconnected");
    }, DISCONNECTED_MS);
  } else if (now === "failed" || now === "closed") {
    reconnect(now);
  }
}

function reconnect(why) {
  if (state.ended || state.hidden || state.reconnecting) return;
  state.reconnecting = true;
  log(say([`连接中断（${why}），正在重新连接…`, `Connection lost (${why}); reconnecting…`]));
  for (const tile of mediaTiles()) unbind(tile, "reconnecting");
  const old = state.pc;
  state.pc = null;
  if (old) old.close();
  const delay = state.retries ? Math.min(1000 * 2 ** (state.retries - 1), 10_000) : 0;
  setTimeout(async () => {
    if (state.ended || state.hidden) return;
    try {
      await connect();
    } catch (e) {
      state.retries += 1;
      state.reconnecting = false;
      if (await callIsOver()) return;
      fail(e.message);
      reconnect("retry");
    }
  }, delay);
}

async function callIsOver() {
  try {
    const call = await api("GET", `/api/v1/calls/${callId}`);
    if (["ringing", "live"].includes(call.state)) return false;
    finish(say(TEXT[call.state] || TEXT.ended));
    return true;
  } catch {
    return false;
  }
}

function finish(label) {
  state.ended = true;
  setText(document.querySelector('[data-testid="call-state"]'), label);
  state.pc?.close();
  for (const tile of mediaTiles()) unbind(tile, "ok");
}

async function attach() {
  const pc = state.pc;
  if (!pc) return;
  const generation = state.generation;
  const videos = receiving(pc, "video");
  const audios = receiving(pc, "audio");
  const track = (list, i) => list[i]?.receiver.track;
  if (!operator) {
    for (const [i, tile] of mediaTiles().entries()) {
      if (videos[i]) bind(tile, track(videos, i), track(audios, i));
    }
    return;
  }
  const map = await api("GET", `/api/v1/calls/${callId}/media`);
  if (generation !== state.generation) return;
  for (const tile of mediaTiles()) {
    const slot = map.slots[tile.dataset.centre];
    if (slot !== undefined && videos[slot]) bind(tile, track(videos, slot), track(audios, slot));
    else if (!tile.bound) setConn(tile, "ok"); // not joined yet: nothing to wait for
  }
  refresh(map);
}

// A peer closed under the page (no event fires for that) or a bound track that
// ended: reconnect. Cheap, so it runs often.
function guard() {
  const pc = state.pc;
  if (!pc || state.ended || state.hidden || state.reconnecting) return;
  if (pc.connectionState === "closed" || pc.signalingState === "closed") reconnect("closed");
  else if (mediaTiles().some((t) => t.bound && t.bound.video.readyState !== "live")) reconnect("track ended");
}

// Every second: a tile whose frames advance is live; one whose frames stopped has no
// picture; when no bound track has had a frame for DEAD_MS the peer is replaced.
async function watch() {
  const pc = state.pc;
  if (!pc || state.ended || state.hidden || state.reconnecting) return;
  const frames = new Map();
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") frames.set(s.trackIdentifier, s.framesDecoded || 0);
  });
  const now = performance.now();
  for (const tile of mediaTiles()) {
    const bound = tile.bound;
    if (!bound || bound.generation !== state.generation) continue;
    const count = frames.get(bound.video.id) || 0;
    if (count > bound.frames) {
      bound.frames = count;
      bound.at = now;
      setConn(tile, "ok");
    } else if (now - bound.at > STALLED_MS && tile.dataset.conn === "ok") {
      setConn(tile, "stalled");
    }
  }
  const bound = mediaTiles().filter((t) => t.bound && t.bound.generation === state.generation);
  if (pc === state.pc && bound.length && bound.every((t) => now - t.bound.at > DEAD_MS)) reconnect("no frames");
}

// --- labels from the call's events ------------------------------------------------------

function apply(event) {
  if (event.kind === "floor") floorHolder = event.centre;
  if (!event.centre) return;
  const label = labelOf(event.centre);
  if (STATUS_KINDS.includes(event.kind)) {
    label.status = event.kind;
    if (event.kind === "left") label.video = "";
  } else if (event.kind === "video_live") label.video = "live";
  else if (event.kind === "video_lost") label.video = event.data.state || "black";
  else if (event.kind === "faces_seen") label.faces = Math.max(label.faces, event.data.faces || 0);
  else if (event.kind === "verified") label.verified = true;
}

// Labels as the server recorded them; events that came in meanwhile are applied again.
async function refresh(map) {
  if (!operator) return;
  buffered = [];
  try {
    map = map || await api("GET", `/api/v1/calls/${callId}/media`);
  } catch {
    buffered = null;
    return;
  }
  labels.clear();
  for (const [centre, label] of Object.entries(map.tiles || {})) labels.set(centre, { ...label });
  floorHolder = map.floor ?? null;
  for (const event of buffered) if (event.event_id > (map.upto || 0)) apply(event);
  buffered = null;
  paintAll();
}

function onEvent(event) {
  if (event.type === "issue_raised") {
    log(`${event.centre} ${say(["登记问题", "issue raised"])} #${event.issue_id}`);
    return;
  }
  if (event.type !== "attendance") return;
  const label = TEXT[event.kind] ? say(TEXT[event.kind]) : event.kind;
  if (event.kind === "ended" || event.kind === "interrupted") finish(label);
  // The server recorded this page's own connection gone (it cut it, or heard nothing):
  // join again at once rather than wait to notice.
  if (event.kind === "left" && event.centre === me && state.pc?.connectionState === "connected") reconnect("left");
  apply(event);
  buffered?.push(event);
  const tile = operator && event.centre ? tileOf(event.centre) : null;
  if (tile) {
    paint(tile);
    if (event.kind === "joined") attach().catch((e) => fail(e.message));
  } else if (!operator && event.centre === me && STATUS_KINDS.includes(event.kind)) {
    setText(document.querySelector('[data-testid="my-status"]'), label);
  }
  if (event.kind === "floor") paintAll();
  log(`${event.centre || ""} ${label}`);
}

let socketDelay = 500;
function listen(again = false) {
  const query = joinToken ? `?token=${encodeURIComponent(joinToken)}` : "";
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/calls/${callId}${query}`);
  state.ws = ws;
  ws.onopen = () => {
    socketDelay = 500;
    if (again) refresh(); // events may have been missed while the socket was down
  };
  ws.onmessage = (msg) => { try { onEvent(JSON.parse(msg.data)); } catch { /* hello */ } };
  ws.onclose = () => {
    if (state.ended || state.hidden || state.ws !== ws) return;
    setTimeout(() => listen(true), socketDelay);
    socketDelay = Math.min(socketDelay * 2, 10_000);
  };
}

// The tab closes, reloads or navigates away: leave now rather than after a timeout.
// A beacon cannot send headers; see PROTOCOL.md for how it authenticates.
addEventListener("pagehide", () => {
  if (state.ended) return;
  state.hidden = true;
  if (state.leaveToken) {
    const body = new URLSearchParams({ leave_token: state.leaveToken });
    if (!joinToken) body.set("csrf_token", csrf);
    const query = joinToken ? `?token=${encodeURIComponent(joinToken)}` : "";
    navigator.sendBeacon(`/calls/${callId}${query}`, body);
    state.leaveToken = "";
  }
  state.pc?.close();
  state.ws?.close();
});
addEventListener("pageshow", (event) => {
  if (!event.persisted || state.ended) return; // back from the back/forward cache
  state.hidden = false;
  listen(true);
  if (state.generation) reconnect("pageshow");
});

function on(id, handler) {
  const element = document.getElementById(id);
  if (element) element.addEventListener("click", () => handler().catch((e) => fail(e.message)));
}

for (const tile of document.querySelectorAll(".tile[data-centre]")) {
  const centre = tile.dataset.centre;
  tile.querySelector("button.floor").addEventListener("click", () =>
    api("POST", `/api/v1/calls/${callId}/floor`, { centre }).catch((e) => fail(e.message)));
  tile.querySelector("button.snapshot").addEventListener("click", () =>
    api("POST", `/api/v1/calls/${callId}/snapshot`, { centre }).catch((e) => fail(e.message)));
  tile.querySelector(".screen").addEventListener("click", () => {
    pinned = pinned === centre ? null : centre;
    paintAll();
  });
}
// Autoplay may hold back sound until the user does something on the page.
document.addEventListener("click", () => {
  for (const audio of document.querySelectorAll(".tile audio")) if (audio.srcObject && audio.paused) audio.play().catch(() => {});
});
on("floor-none", () => api("POST", `/api/v1/calls/${callId}/floor`, { centre: null }));
on("end", () => api("POST", `/api/v1/calls/${callId}/end`));
on("leave", async () => {
  state.ended = true; // before the server's "left" arrives: this page is not to rejoin
  await api("POST", `/api/v1/calls/${callId}/leave`, state.leaveToken ? { leave_token: state.leaveToken } : undefined);
  state.leaveToken = "";
  state.pc?.close();
  for (const tile of mediaTiles()) unbind(tile, "ok");
  setText(document.querySelector('[data-testid="my-status"]'), say(TEXT.left));
});
on("accept", async () => {
  await api("POST", `/api/v1/calls/${callId}/accept`);
  document.getElementById("answer-panel").hidden = true;
  await connect();
});
on("decline", async () => {
  await api("POST", `/api/v1/calls/${callId}/decline`);
  document.getElementById("answer-panel").hidden = true;
});

addEventListener("resize", fit);
fit();
listen();
setInterval(() => watch().catch(() => {}), WATCH_MS);
setInterval(guard, GUARD_MS);
const open = ["ringing", "live"].includes(root.dataset.state);
const waiting = !operator && !document.getElementById("answer-panel").hidden;
if (open && !waiting) {
  connect().catch((e) => {
    fail(e.message);
    reconnect("error");
  });
}
