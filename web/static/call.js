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
// - The operator's page receives on one slot per invited centre and, up front, one per
//   camera it may show (data-camera-slots, at most call_cameras.MAX_PER_CALL): a camera
//   added mid-call is routed to a spare slot of the same connection, so adding one makes
//   no new peer (no left/joined of the operator, no split of its recording). Only a
//   camera beyond them (added from elsewhere) makes the page offer again.
// - A tile whose video has had no frame for STALLED_MS while its audio still arrives
//   says 仅音频 (the server pauses a weak viewer's video, media/linkrate.py); it shows
//   no picture and no video label until frames come again. Such a tile keeps the peer
//   alive: only a connection with neither frames nor sound is replaced.
// - Every text the page shows comes from web/i18n.py through call.html's #call-text:
//   centre names, never codes; labels, never event identifiers.
import { api, joinToken } from "/static/api.js";

const root = document.getElementById("call");
const callId = root.dataset.call;
const operator = root.dataset.role === "operator";
const me = root.dataset.me;
// The camera's caps, from the server's settings (frames per second, bits per second).
const publish = { fps: Number(root.dataset.videoFps) || 15, bps: Number(root.dataset.videoBps) || 800000 };
const zh = document.documentElement.lang.startsWith("zh");
const say = (pair) => (zh ? pair[0] : pair[1]);
const TEXT = JSON.parse(document.getElementById("call-text").textContent);
const label = (key) => TEXT.labels[key] ?? "";
const nameOf = (code) => TEXT.names[code] || label("someone");
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
const errorBox = document.getElementById("call-error");
const logBox = document.getElementById("log");
const grid = document.querySelector(".grid.gallery");

// Why the page replaces its connection, for the log (client-side words only).
const WHY = {
  disconnected: ["连接断开", "disconnected"], failed: ["连接失败", "failed"],
  closed: ["连接已关闭", "closed"], "track ended": ["视频轨道已结束", "track ended"],
  "no frames": ["长时间没有画面和声音", "no frames or sound"],
  left: ["服务器记录本机已离开", "recorded as left"], retry: ["重试", "retrying"],
  pageshow: ["页面恢复", "page restored"], error: ["出错", "error"],
  camera: ["接入摄像头", "a camera was added"],
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
// (audio only if its sound still arrives)
const DEAD_MS = 3500; // no frame and no sound on any bound tile this long: the peer is
// dead (the server sends every video slot without a source a black frame a second)
const WATCH_MS = 1000;
const QUALITY_MS = 2000; // link quality is measured over about this long
const GUARD_MS = 250;

const state = {
  slots: Number(root.dataset.slots || 0), // the invited centres: one receiving slot each
  cameraSlots: Number(root.dataset.cameraSlots || 0), // receiving slots kept for cameras
  ended: false,
  phase: root.dataset.state, // ringing → live → ended | interrupted
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
// Cameras the call has shown (ids): each holds one of the operator's camera slots (from
// data-cameras-ever for those shown before the page loaded).
const camerasSeen = new Set((root.dataset.camerasEver || "").split(",").filter(Boolean));

// Times on the page are Asia/Shanghai's, whatever the browser's own zone is.
const clock = () => new Date().toLocaleTimeString(zh ? "zh-CN" : "en-GB",
  { timeZone: "Asia/Shanghai", hour12: false });

function log(text) {
  const item = document.createElement("li");
  item.textContent = `${clock()} ${text}`;
  logBox.prepend(item);
}

function fail(text) {
  errorBox.textContent = text;
}

async function camera() {
  // Camera and microphone; if one is missing, carry on with the other and say so.
  const video = { width: 640, height: 360, frameRate: { ideal: publish.fps, max: publish.fps } };
  const attempts = [{ video, audio: true }, { video: true }, { audio: true }];
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
    setText(overlay, label(`conn.${conn === "waiting" ? (state.generation > 1 ? "reconnecting" : "connecting") : conn}`));
  }
  const centre = tile.dataset.centre;
  if (!centre) return;
  const said = labels.get(centre);
  const picture = conn === "ok"; // the tile's video is the current connection's and moving
  if (said?.status) setText(tile.querySelector(".status"), label(`event.${said.status}`));
  const video = tile.querySelector(".video");
  setText(video, picture && said?.video ? label(`video.${said.video}`) || label("video.black") : "");
  video.dataset.state = picture ? said?.video || "" : "";
  setText(tile.querySelector(".faces"),
    picture && said?.faces ? label("faces").replace("%d", String(said.faces)) : "");
  setText(tile.querySelector(".verified"), picture && said?.verified ? label("verified") : "");
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
  const now = performance.now();
  // frames/at: the video's decoded frames and when they last advanced; packets/heard:
  // the same for the audio's packets; sample: counters at the last quality measure.
  tile.bound = { video: videoTrack, audio: audioTrack || null, frames: 0, at: now, packets: 0,
    heard: now, sample: null, generation: state.generation };
  showQuality(tile, null);
  tile.dataset.generation = String(state.generation);
  setConn(tile, "waiting");
}

function unbind(tile, conn) {
  tile.bound = null;
  showQuality(tile, null);
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
  sendView();
}

// A tile narrower than SMALL_TILE px (other than the focus) needs no more than the base
// temporal layer: the operator's page tells the server which tiles are small, and their
// video then comes at a quarter of the frames (media/room.py Room.view) — a grid of 20
// villages decodes as 5. Sent when the set changes and after every new connection.
const SMALL_TILE = 320;
let viewSent = null; // the set the server has, sorted and joined; null: unknown
let viewTimer = 0;
function sendView() {
  if (!operator || !state.pc) return;
  clearTimeout(viewTimer);
  viewTimer = setTimeout(async () => {
    const small = mediaTiles()
      .filter((t) => !t.classList.contains("focus") && t.querySelector("video").clientWidth < SMALL_TILE)
      .map((t) => t.dataset.centre)
      .sort();
    const key = small.join(",");
    if (key === viewSent) return;
    viewSent = key;
    try {
      await api("POST", `/api/v1/calls/${callId}/view`, { small });
      for (const tile of mediaTiles()) tile.dataset.small = small.includes(tile.dataset.centre) ? "1" : "";
    } catch (e) {
      viewSent = null; // sent again with the next layout or connection
      console.warn("view:", e.message);
    }
  }, 300);
}

// --- the peer connection ----------------------------------------------------------------

// The camera, published with VP8 temporal layers (L1T3: layer 0 a quarter of the
// frames, 1 the next quarter, 2 the rest) so the server can send a weak viewer fewer
// frames it can still decode (media/linkrate.py), within the server's frame rate and
// bitrate caps (DISPATCH_VIDEO_FPS / _KBPS: every viewer receives what is sent). A
// browser that refuses the mode publishes one layer, as before.
function addCamera(pc, track, direction, stream) {
  const limits = { maxFramerate: publish.fps, maxBitrate: publish.bps };
  try {
    return pc.addTransceiver(track, { direction, streams: [stream], sendEncodings: [{ scalabilityMode: "L1T3", ...limits }] });
  } catch {
    return pc.addTransceiver(track, { direction, streams: [stream], sendEncodings: [limits] });
  }
}

function receiving(pc, kind) {
  return pc.getTransceivers().filter((t) => t.receiver.track.kind === kind
    && ["recvonly", "sendrecv"].includes(t.currentDirection));
}

// `before`: a request the offer must not overtake (the answer to a ringing call): the
// camera, the ICE servers and the gathering go on meanwhile.
async function connect(before = null) {
  const generation = ++state.generation;
  const old = state.pc;
  state.pc = null;
  if (old) old.close();
  if (!state.stream) {
    state.stream = await camera();
    document.getElementById("self").srcObject = state.stream;
  }
  const stream = state.stream;
  // Asked before every connection: a TURN credential is short-lived (dispatch/turn.py).
  const { iceServers } = await api("GET", `/api/v1/calls/${callId}/ice`);
  if (generation !== state.generation) return;
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", iceServers });
  state.pc = pc;
  window.dispatchPeer = pc; // for tests: getStats()
  const [video] = stream.getVideoTracks();
  const [audio] = stream.getAudioTracks();
  if (operator) {
    if (video) addCamera(pc, video, "sendonly", stream);
    if (audio) pc.addTransceiver(audio, { direction: "sendonly", streams: [stream] });
    const receiving = state.slots + Math.max(state.cameraSlots, camerasSeen.size);
    for (let i = 0; i < receiving; i++) {
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.addTransceiver("audio", { direction: "recvonly" });
    }
  } else {
    // Slot 0 (the operator) rides on the camera's m-lines; slot 1 is the floor.
    if (video) addCamera(pc, video, "sendrecv", stream);
    else pc.addTransceiver("video", { direction: "recvonly" });
    if (audio) pc.addTransceiver(audio, { direction: "sendrecv", streams: [stream] });
    else pc.addTransceiver("audio", { direction: "recvonly" });
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
  }
  pc.addEventListener("connectionstatechange", () => onPeerState(pc, generation));
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  if (before) {
    try {
      await before;
    } catch (e) { // refused: no call to join, so no peer left behind
      if (state.pc === pc) state.pc = null;
      pc.close();
      throw e;
    }
  }
  if (generation !== state.generation) return;
  const answer = await api("POST", `/api/v1/calls/${callId}/sdp`, { type: "offer", sdp: pc.localDescription.sdp });
  if (generation !== state.generation) return;
  state.leaveToken = answer.leave_token || "";
  await pc.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
  state.reconnecting = false;
  await attach();
  viewSent = null;
  sendView();
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
  const reason = say(WHY[why] || WHY.error);
  log(say([`连接中断（${reason}），正在重新连接…`, `Connection lost (${reason}); reconnecting…`]));
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

// The call's state as the server has it (after the page loads, and whenever the event
// socket opens again: events may have been missed meanwhile); true once it is over.
async function callIsOver() {
  try {
    const call = await api("GET", `/api/v1/calls/${callId}`);
    if (["ringing", "live"].includes(call.state)) {
      setPhase(call.state);
      return false;
    }
    finish(call.state);
    return true;
  } catch {
    return false;
  }
}

// ringing → live → ended | interrupted, never back: a late answer to an old request
// cannot make an ended call ring again.
const PHASES = ["ringing", "live", "ended", "interrupted"];
function setPhase(phase) {
  if (!PHASES.includes(phase) || PHASES.indexOf(phase) < PHASES.indexOf(state.phase)) return;
  state.phase = phase;
  const element = document.querySelector('[data-testid="call-state"]');
  setText(element, label(`phase.${phase}`));
  if (element) element.dataset.phase = phase;
}

function finish(phase) {
  state.ended = true;
  setPhase(phase === "interrupted" ? "interrupted" : "ended");
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

// What a bound tile shows, from when its video last advanced (`at`) and its sound was
// last heard (`heard`): "ok" only while frames come; "audio" when they stopped and
// sound still comes; "stalled" when both stopped; "waiting" until the first of either.
function tileState(conn, bound, now) {
  if (bound.frames > 0 && now - bound.at <= STALLED_MS) return "ok";
  const silentVideo = now - bound.at > STALLED_MS;
  if (silentVideo && bound.packets > 0 && now - bound.heard <= STALLED_MS) return "audio";
  if (conn === "waiting") return "waiting";
  return silentVideo ? "stalled" : conn;
}

// Every second: each tile's state from its frames and sound; about every QUALITY_MS
// its link quality; when no bound tile has had a frame or a sound for DEAD_MS the peer
// is replaced.
async function watch() {
  const pc = state.pc;
  if (!pc || state.ended || state.hidden || state.reconnecting) return;
  const stats = await pc.getStats();
  if (pc !== state.pc || state.reconnecting) return;
  const inbound = new Map(); // receiver track id -> its inbound-rtp stats
  stats.forEach((s) => { if (s.type === "inbound-rtp" && s.trackIdentifier) inbound.set(s.trackIdentifier, s); });
  const rtt = roundTrip(stats);
  const now = performance.now();
  const bound = mediaTiles().filter((t) => t.bound && t.bound.generation === state.generation);
  for (const tile of bound) {
    const b = tile.bound;
    const video = inbound.get(b.video.id);
    const audio = b.audio ? inbound.get(b.audio.id) : undefined;
    const frames = video?.framesDecoded || 0;
    const packets = audio?.packetsReceived || 0;
    if (frames > b.frames) [b.frames, b.at] = [frames, now];
    if (packets > b.packets) [b.packets, b.heard] = [packets, now];
    setConn(tile, tileState(tile.dataset.conn, b, now));
    measure(tile, [video, audio].filter(Boolean), rtt, now);
  }
  const dead = (t) => now - Math.max(t.bound.at, t.bound.heard) > DEAD_MS;
  if (bound.length && bound.every(dead)) reconnect("no frames");
}

// --- link quality: incoming bitrate and loss per tile, the connection's round trip ------

// Round-trip time in ms: the selected ICE candidate pair's (STUN checks), else one the
// server's RTCP receiver reports give for what this page sends; null when unknown.
function roundTrip(stats) {
  let pair = null;
  let reported = null;
  stats.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    if (s.type === "remote-inbound-rtp" && typeof s.roundTripTime === "number") reported = s.roundTripTime;
  });
  if (!pair) stats.forEach((s) => { if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s; });
  const seconds = typeof pair?.currentRoundTripTime === "number" ? pair.currentRoundTripTime : reported;
  return seconds === null ? null : seconds * 1000;
}

// Bitrate and loss over the interval since the tile's last sample (its video and audio
// together), once that interval is about QUALITY_MS long.
function measure(tile, streams, rtt, now) {
  const b = tile.bound;
  const sum = (f) => streams.reduce((total, s) => total + Math.max(0, f(s) || 0), 0);
  const counters = { bytes: sum((s) => s.bytesReceived), received: sum((s) => s.packetsReceived),
    lost: sum((s) => s.packetsLost), at: now };
  const last = b.sample;
  if (last && now - last.at < QUALITY_MS - WATCH_MS / 2) return;
  b.sample = counters;
  if (!last) return;
  const seconds = (now - last.at) / 1000;
  const got = Math.max(0, counters.received - last.received);
  const missed = Math.max(0, counters.lost - last.lost);
  showQuality(tile, {
    kbps: (Math.max(0, counters.bytes - last.bytes) * 8) / seconds / 1000,
    loss: got + missed ? (100 * missed) / (got + missed) : null,
    rtt,
  });
}

function showQuality(tile, quality) {
  const line = tile.querySelector(".link");
  if (!line) return;
  if (!quality) {
    line.replaceChildren();
    for (const key of ["kbps", "loss", "rtt"]) delete line.dataset[key];
    return;
  }
  const number = (value, digits) => (value === null || !Number.isFinite(value) ? "—" : value.toFixed(digits));
  const parts = [
    [label("link.rate"), `${number(quality.kbps, 0)} kbit/s`],
    [label("link.loss"), `${number(quality.loss, 1)}%`],
    [label("link.rtt"), `${number(quality.rtt, 0)} ms`],
  ];
  line.replaceChildren(...parts.map(([name, value]) => {
    const part = document.createElement("span");
    part.textContent = `${name} ${value}`;
    return part;
  }));
  line.dataset.kbps = number(quality.kbps, 0);
  line.dataset.loss = number(quality.loss, 1);
  line.dataset.rtt = number(quality.rtt, 0);
}

// --- labels from the call's events ------------------------------------------------------

function apply(event) {
  if (event.kind === "floor") floorHolder = event.centre;
  if (!event.centre) return;
  const said = labelOf(event.centre);
  if (STATUS_KINDS.includes(event.kind)) {
    said.status = event.kind;
    if (event.kind === "left") said.video = "";
  } else if (event.kind === "video_live") said.video = "live";
  else if (event.kind === "video_lost") said.video = event.data.state || "black";
  else if (event.kind === "faces_seen") said.faces = Math.max(said.faces, event.data.faces || 0);
  else if (event.kind === "verified") said.verified = true;
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
  for (const [centre, said] of Object.entries(map.tiles || {})) labels.set(centre, { ...said });
  floorHolder = map.floor ?? null;
  // Not showCamera: attach() refreshes with its map, and must not attach again.
  for (const camera of map.cameras || []) if (sayCamera(camera)) moreSlots();
  for (const event of buffered) if (event.event_id > (map.upto || 0)) apply(event);
  buffered = null;
  paintAll();
}

// "text (note)" in the page's punctuation.
const aside = (text, note) => (note ? (zh ? `${text}（${note}）` : `${text} (${note})`) : text);

// The log line of an event: names and labels only; "" for a kind the page has no
// label for (it is left out rather than shown raw).
function describe(event) {
  const who = event.centre ? nameOf(event.centre) : event.data?.camera_name || "";
  if (event.type === "issue_raised") {
    return aside(`${who} ${label("event.issue_raised")} #${event.issue_id}`, label(`issue.${event.category}`));
  }
  if (event.kind === "floor") return event.centre ? `${who} ${label("event.floor")}` : label("event.floor_back");
  const text = label(`event.${event.kind}`);
  if (!text) return "";
  if (event.kind === "video_lost") return aside(`${who} ${text}`, label(`video.${event.data?.state}`));
  if (event.kind === "faces_seen") return `${who} ${label("faces").replace("%d", String(event.data?.faces ?? 0))}`;
  return who ? `${who} ${text}` : text;
}

function onEvent(event) {
  if (event.type === "issue_raised") {
    log(describe(event));
    return;
  }
  if (event.type === "camera") {
    showCamera(event);
    log(`${event.camera_name} ${label(`camera.${event.state}`)}`);
    return;
  }
  if (event.type !== "attendance") return;
  if (event.kind === "ended" || event.kind === "interrupted") finish(event.kind);
  // The call is live from its first answer; a callee on the air says so too (an answer
  // this page missed while its socket was down).
  if (event.kind === "answered" || (["joined", "video_live"].includes(event.kind) && event.centre !== TEXT.caller)) {
    setPhase("live");
  }
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
    setText(document.querySelector('[data-testid="my-status"]'), label(`event.${event.kind}`));
  }
  if (event.kind === "floor") paintAll();
  const line = describe(event);
  if (line) log(line);
}

let socketDelay = 500;
function listen(again = false) {
  const query = joinToken ? `?token=${encodeURIComponent(joinToken)}` : "";
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/calls/${callId}${query}`);
  state.ws = ws;
  ws.onopen = () => {
    socketDelay = 500;
    callIsOver(); // the call's state, as events before this socket opened left it
    if (again) refresh(); // events may have been missed while the socket was down
  };
  ws.onmessage = (msg) => {
    let event;
    try { event = JSON.parse(msg.data); onEvent(event); } catch { return; /* hello */ }
    root.dispatchEvent(new CustomEvent("call-event", { detail: event })); // recording.js
  };
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

// --- cameras: view-only participants (camera-<id>), added by the operator ---------------

// A camera's tile, made from the page's template when the camera is new to the page.
function cameraTile(camera) {
  let tile = tileOf(camera.participant);
  if (tile || !grid) return tile;
  tile = document.getElementById("camera-tile").content.firstElementChild.cloneNode(true);
  tile.dataset.centre = camera.participant;
  tile.dataset.camera = String(camera.camera);
  tile.dataset.testid = `tile-${camera.participant}`;
  tile.querySelector(".name").textContent = camera.name ?? camera.camera_name ?? "";
  wireCamera(tile);
  grid.append(tile);
  fit();
  return tile;
}

// A camera's state (an event, the add answer or the media map) on its tile; true when
// the camera is new to the call and the connection has no spare slot left for it.
function sayCamera(camera) {
  const existing = tileOf(camera.participant);
  if (camera.state === "removed") {
    if (existing) {
      unbind(existing, "ok");
      existing.remove();
      fit();
    }
    return false;
  }
  const tile = cameraTile(camera);
  if (!tile) return false;
  tile.dataset.cameraState = camera.state;
  setText(tile.querySelector(".camera-state"), label(`camera.${camera.state}`));
  const id = String(camera.camera);
  if (camerasSeen.has(id)) return false;
  camerasSeen.add(id);
  return camerasSeen.size > state.cameraSlots;
}

// A camera beyond the slots offered: offer again with one more (a new peer).
function moreSlots() {
  state.cameraSlots = camerasSeen.size;
  if (state.pc || state.generation) reconnect("camera");
}

// A camera new to the call takes a spare slot of the connection, which the server maps
// once the camera sends: its tile is bound then (on "live") from the media map.
function showCamera(camera) {
  const existed = Boolean(tileOf(camera.participant));
  if (sayCamera(camera)) {
    moreSlots();
  } else if (camera.state === "live" || (!existed && camera.state !== "removed")) {
    attach().catch((e) => fail(e.message));
  }
}

function wireCamera(tile) {
  const url = () => `/api/v1/calls/${callId}/cameras/${tile.dataset.camera}`;
  tile.querySelector("button.snapshot").addEventListener("click", () =>
    api("POST", `${url()}/snapshot`).catch((e) => fail(e.message)));
  tile.querySelector("button.camera-remove").addEventListener("click", () =>
    api("DELETE", url()).then(() => showCamera({ participant: tile.dataset.centre, state: "removed" }))
      .catch((e) => fail(e.message)));
  tile.querySelector(".screen").addEventListener("click", () => {
    pinned = pinned === tile.dataset.centre ? null : tile.dataset.centre;
    paintAll();
  });
}

for (const tile of document.querySelectorAll(".tile.camera[data-centre]")) wireCamera(tile);
on("camera-add", async () => {
  const camera = Number(document.getElementById("camera-choice").value);
  showCamera(await api("POST", `/api/v1/calls/${callId}/cameras`, { camera }));
});

for (const tile of document.querySelectorAll(".tile[data-centre]:not(.camera)")) {
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
  setText(document.querySelector('[data-testid="my-status"]'), label("event.left"));
});
on("accept", async () => {
  const accepted = api("POST", `/api/v1/calls/${callId}/accept`).then(() => {
    document.getElementById("answer-panel").hidden = true;
    setPhase("live"); // the first answer makes the call live
  });
  // The offer is made while the answer is written; it is sent once the call is accepted.
  await Promise.all([accepted, connect(accepted)]);
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
