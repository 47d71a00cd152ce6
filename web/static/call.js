// A call in the browser: the operator's live grid or a centre's own view.
// Protocol: web/PROTOCOL.md. No build step; plain ES module.
import { api, joinToken } from "/static/api.js";

const root = document.getElementById("call");
const callId = root.dataset.call;
const operator = root.dataset.role === "operator";
const me = root.dataset.me;
const zh = document.documentElement.lang.startsWith("zh");
const say = (pair) => (zh ? pair[0] : pair[1]);
const errorBox = document.getElementById("call-error");
const logBox = document.getElementById("log");

const TEXT = {
  rang: ["呼叫中", "ringing"], answered: ["已接听", "answered"], declined: ["已拒绝", "declined"],
  not_answered: ["未接听", "not answered"], joined: ["已入会", "joined"], left: ["已离开", "left"],
  live: ["视频正常", "live"], black: ["黑屏", "black"], frozen: ["画面冻结", "frozen"],
  verified: ["视频已核验", "video verified"], ended: ["调度已结束", "call ended"],
  interrupted: ["调度已中断", "call interrupted"], snapshot: ["已截图", "snapshot taken"],
  floor: ["点名发言", "floor given"],
};
const CAMERA = {
  NotAllowedError: ["摄像头或麦克风被拒绝：请在浏览器地址栏旁允许本网站使用摄像头和麦克风，然后刷新页面。",
    "The camera or microphone was refused: allow this site to use them (next to the address bar), then reload."],
  NotFoundError: ["未找到摄像头或麦克风：请接好设备后刷新页面。", "No camera or microphone was found: connect one, then reload."],
  NotReadableError: ["摄像头或麦克风正被其他程序使用：请关闭该程序后刷新页面。",
    "The camera or microphone is in use by another program: close it, then reload."],
};

let pc = null;
const state = { slots: Number(root.dataset.slots || 0), ended: false };

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

function show(video, track) {
  video.srcObject = new MediaStream([track]);
  video.play().catch(() => {});
}

async function connect() {
  if (pc) pc.close();
  const stream = await camera();
  document.getElementById("self").srcObject = stream;
  pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
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
  pc.addEventListener("connectionstatechange", () => {
    if (pc.connectionState === "failed" && !state.ended) {
      log(say(["连接中断，正在重连…", "Connection lost; reconnecting…"]));
      setTimeout(() => connect().catch((e) => fail(e.message)), 2000);
    }
  });
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const answer = await api("POST", `/api/v1/calls/${callId}/sdp`, { type: "offer", sdp: pc.localDescription.sdp });
  await pc.setRemoteDescription(answer);
  attach();
}

function receivingVideo() {
  return pc.getTransceivers().filter((t) => t.receiver.track.kind === "video"
    && ["recvonly", "sendrecv"].includes(t.currentDirection));
}

async function attach() {
  const videos = receivingVideo();
  if (!operator) {
    if (videos[0]) show(document.getElementById("operator"), videos[0].receiver.track);
    if (videos[1]) show(document.getElementById("floor"), videos[1].receiver.track);
    return;
  }
  const map = await api("GET", `/api/v1/calls/${callId}/media`);
  for (const [centre, slot] of Object.entries(map.slots)) {
    const tile = document.querySelector(`.tile[data-centre="${centre}"] video`);
    if (tile && videos[slot] && !tile.srcObject) show(tile, videos[slot].receiver.track);
  }
}

function tile(centre) {
  return document.querySelector(`.tile[data-centre="${centre}"]`);
}

function onEvent(event) {
  if (event.type === "issue_raised") {
    log(`${event.centre} ${say(["登记问题", "issue raised"])} #${event.issue_id}`);
    return;
  }
  if (event.type !== "attendance") return;
  const t = tile(event.centre);
  const label = TEXT[event.kind] ? say(TEXT[event.kind]) : event.kind;
  if (event.kind === "ended" || event.kind === "interrupted") {
    state.ended = true;
    document.querySelector('[data-testid="call-state"]').textContent = label;
    if (pc) pc.close();
  }
  if (t) {
    if (["rang", "answered", "declined", "not_answered", "joined", "left"].includes(event.kind)) {
      t.querySelector(".status").textContent = label;
      if (event.kind === "joined") attach();
    }
    if (event.kind === "video_live") t.querySelector(".video").textContent = say(TEXT.live);
    if (event.kind === "video_lost") t.querySelector(".video").textContent = say(TEXT[event.data.state] || TEXT.black);
    if (event.kind === "faces_seen") t.querySelector(".faces").textContent = say([`在岗 ${event.data.faces} 人`, `faces ${event.data.faces}`]);
    if (event.kind === "verified") t.querySelector(".verified").textContent = say(TEXT.verified);
  } else if (!operator && event.centre === me) {
    const mine = document.querySelector('[data-testid="my-status"]');
    if (mine) mine.textContent = label;
  }
  log(`${event.centre || ""} ${label}`);
}

function listen() {
  const query = joinToken ? `?token=${encodeURIComponent(joinToken)}` : "";
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/calls/${callId}${query}`);
  ws.onmessage = (msg) => { try { onEvent(JSON.parse(msg.data)); } catch { /* hello */ } };
  ws.onclose = () => { if (!state.ended) setTimeout(listen, 2000); };
}

function on(id, handler) {
  const element = document.getElementById(id);
  if (element) element.addEventListener("click", () => handler().catch((e) => fail(e.message)));
}

for (const t of document.querySelectorAll(".tile[data-centre]")) {
  const centre = t.dataset.centre;
  t.querySelector("button.floor").addEventListener("click", () =>
    api("POST", `/api/v1/calls/${callId}/floor`, { centre }).catch((e) => fail(e.message)));
  t.querySelector("button.snapshot").addEventListener("click", () =>
    api("POST", `/api/v1/calls/${callId}/snapshot`, { centre }).catch((e) => fail(e.message)));
}
on("floor-none", () => api("POST", `/api/v1/calls/${callId}/floor`, { centre: null }));
on("end", () => api("POST", `/api/v1/calls/${callId}/end`));
on("leave", async () => { await api("POST", `/api/v1/calls/${callId}/leave`); state.ended = true; pc?.close(); });
on("accept", async () => {
  await api("POST", `/api/v1/calls/${callId}/accept`);
  document.getElementById("answer-panel").hidden = true;
  await connect();
});
on("decline", async () => {
  await api("POST", `/api/v1/calls/${callId}/decline`);
  document.getElementById("answer-panel").hidden = true;
});

listen();
const open = ["ringing", "live"].includes(root.dataset.state);
const waiting = !operator && !document.getElementById("answer-panel").hidden;
if (open && !waiting) connect().catch((e) => fail(e.message));
