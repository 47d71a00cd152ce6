"""A small RTSP server for the camera tests: one H.264 test pattern, RTP interleaved on
the RTSP connection (TCP only, what the service asks for), per RFC 2326 and RFC 6184.

The picture is a plain colour with a white bar moving across it (as tests/peers.py's
PatternTrack, so ``colour_of`` tells it from a black frame), encoded once by PyAV's
libx264 (baseline, a key frame with its SPS and PPS every second) and sent in a loop at
``fps``. With ``username`` and ``password`` it asks for HTTP Basic credentials (401
otherwise), so a test proves the service decrypted and sent the stored ones.

``stop`` closes the listening socket and every connection (a camera that drops off the
network); ``start`` listens again on the same port.
"""

from __future__ import annotations

import base64
import itertools
import re
import socket
import struct
import threading
import time
from fractions import Fraction

import av
import numpy as np
from ports import free_port

BGR = {"blue": (200, 40, 40), "green": (40, 200, 40), "red": (40, 40, 200)}
MTU_PAYLOAD = 1200


def _encode(colour: str, width: int, height: int, fps: int, frames: int) -> list[bytes]:
    encoder = av.CodecContext.create("libx264", "w")
    assert isinstance(encoder, av.VideoCodecContext)
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = Fraction(1, fps)
    encoder.framerate = fps
    encoder.options = {"tune": "zerolatency", "preset": "ultrafast", "profile": "baseline",
                       "x264-params": f"keyint={fps}:min-keyint={fps}:scenecut=0:"
                                      "repeat-headers=1"}  # fmt: skip
    base = np.empty((height, width, 3), np.uint8)
    base[:] = BGR[colour]
    bar = max(8, width // 16)
    out: list[bytes] = []
    for i in range(frames):
        picture = base.copy()
        x = (i * bar // 5) % (width - bar)
        picture[:, x : x + bar] = 255
        frame = av.VideoFrame.from_ndarray(picture, format="bgr24").reformat(format="yuv420p")
        frame.pts = i
        out.extend(bytes(p) for p in encoder.encode(frame))
    out.extend(bytes(p) for p in encoder.encode(None))
    return out


def _nal_units(access_unit: bytes) -> list[bytes]:
    """The NAL units of an Annex B access unit, without their start codes."""
    return [unit for unit in re.split(b"\x00\x00\x00?\x01", access_unit) if unit]


def _payloads(access_unit: bytes) -> list[bytes]:
    """RFC 6184 payloads: single NAL unit packets, FU-A for the larger ones."""
    out: list[bytes] = []
    for unit in _nal_units(access_unit):
        if len(unit) <= MTU_PAYLOAD:
            out.append(unit)
            continue
        indicator = (unit[0] & 0xE0) | 28
        kind = unit[0] & 0x1F
        rest = unit[1:]
        chunks = [rest[i : i + MTU_PAYLOAD] for i in range(0, len(rest), MTU_PAYLOAD)]
        for n, chunk in enumerate(chunks):
            header = kind | (0x80 if n == 0 else 0) | (0x40 if n == len(chunks) - 1 else 0)
            out.append(bytes((indicator, header)) + chunk)
    return out


class RtspServer:
    def __init__(
        self,
        *,
        colour: str = "green",
        path: str = "/cam",
        username: str | None = None,
        password: str | None = None,
        width: int = 320,
        height: int = 240,
        fps: int = 15,
    ) -> None:
        self.path = path
        self.fps = fps
        self._auth = None
        if username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self._auth = f"Basic {token}"
        self._units = _encode(colour, width, height, fps, 2 * fps)
        types = {u[0] & 0x1F: u for u in _nal_units(self._units[0])}
        self._sprop = ",".join(base64.b64encode(types[t]).decode() for t in (7, 8))
        self._profile = types[7][1:4].hex()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._clients: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.port = 0
        self.requests: list[str] = []  # "METHOD uri" of each request, for the tests
        self.plays = 0

    @property
    def address(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{self.path}"

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.port == 0:  # not the ephemeral range: see tests/ports.py
                self.port = free_port()
            listener.bind(("127.0.0.1", self.port))
            listener.listen(8)
        except OSError:
            listener.close()
            raise
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._acceptor.start()

    def stop(self) -> None:
        """Stop listening and drop every client. The port is free when this returns:
        closing a socket another thread is blocked in ``accept`` on leaves it listening
        until that ``accept`` returns (Linux), so a restart on the same port failed with
        "Address already in use", or the client reconnected to the closed listener.
        ``shutdown`` wakes the ``accept``; the acceptor is joined."""
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # not supported for a listener here: close alone, as before
            listener.close()
            if self._acceptor is not None:
                self._acceptor.join(timeout=5)
                self._acceptor = None
        with self._lock:
            clients, self._clients = set(self._clients), set()
        for client in clients:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            client.close()

    # --- connections ---

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._clients.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        write = threading.Lock()
        playing = threading.Event()
        try:
            while True:
                first = reader.read(1)
                if not first:
                    return
                if first == b"$":  # the client's RTCP, interleaved: skip it
                    _, size = struct.unpack(">BH", reader.read(3))
                    reader.read(size)
                    continue
                lines = [first + reader.readline()]
                while lines[-1] not in (b"\r\n", b"\n", b""):
                    lines.append(reader.readline())
                method, uri, *_ = lines[0].decode().split()
                headers = {}
                for line in lines[1:-1]:
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                if int(headers.get("content-length", "0")):
                    reader.read(int(headers["content-length"]))
                self.requests.append(f"{method} {uri}")
                reply = self._reply(method, uri, headers)
                with write:
                    conn.sendall(reply)
                if method == "PLAY" and reply.startswith(b"RTSP/1.0 200") and not playing.is_set():
                    playing.set()
                    self.plays += 1
                    threading.Thread(target=self._send, args=(conn, write), daemon=True).start()
                if method == "TEARDOWN":
                    return
        except (OSError, ValueError, struct.error):
            return
        finally:
            with self._lock:
                self._clients.discard(conn)
            conn.close()

    def _reply(self, method: str, uri: str, headers: dict[str, str]) -> bytes:
        seq = headers.get("cseq", "0")
        extra: dict[str, str] = {}
        body = b""
        status = "200 OK"
        if method != "OPTIONS" and self._auth and headers.get("authorization") != self._auth:
            status = "401 Unauthorized"
            extra["WWW-Authenticate"] = 'Basic realm="camera"'
        elif method == "OPTIONS":
            extra["Public"] = "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER"
        elif method == "DESCRIBE":
            if not uri.split("?")[0].endswith(self.path):
                status = "404 Not Found"
            else:
                body = self._sdp().encode()
                extra["Content-Type"] = "application/sdp"
                extra["Content-Base"] = f"{self.address}/"
        elif method == "SETUP":
            if "interleaved" not in headers.get("transport", ""):
                status = "461 Unsupported Transport"
            else:
                extra["Transport"] = "RTP/AVP/TCP;unicast;interleaved=0-1"
                extra["Session"] = "12345678;timeout=60"
        elif method in ("PLAY", "GET_PARAMETER", "SET_PARAMETER", "TEARDOWN"):
            extra["Session"] = "12345678"
        else:
            status = "405 Method Not Allowed"
        head = [f"RTSP/1.0 {status}", f"CSeq: {seq}", *(f"{k}: {v}" for k, v in extra.items())]
        if body:
            head.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(head) + "\r\n\r\n").encode() + body

    def _sdp(self) -> str:
        return "\r\n".join([
            "v=0", "o=- 0 0 IN IP4 127.0.0.1", "s=test pattern", "c=IN IP4 0.0.0.0", "t=0 0",
            "m=video 0 RTP/AVP 96", "a=rtpmap:96 H264/90000",
            f"a=fmtp:96 packetization-mode=1;profile-level-id={self._profile};"
            f"sprop-parameter-sets={self._sprop}",
            "a=control:trackID=0", "",
        ])  # fmt: skip

    def _send(self, conn: socket.socket, write: threading.Lock) -> None:
        """RTP on channel 0 at `fps`, looping over the encoded frames, until the
        connection goes."""
        sequence = itertools.count(1)
        start = time.monotonic()
        for index in itertools.count():
            delay = start + index / self.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            unit = self._units[index % len(self._units)]
            timestamp = (index * 90_000 // self.fps) & 0xFFFFFFFF
            payloads = _payloads(unit)
            packets = b""
            for n, payload in enumerate(payloads):
                marker = 0x80 if n == len(payloads) - 1 else 0
                header = struct.pack(">BBHII", 0x80, marker | 96, next(sequence) & 0xFFFF,
                                     timestamp, 0x1234ABCD)  # fmt: skip
                rtp = header + payload
                packets += b"$\x00" + struct.pack(">H", len(rtp)) + rtp
            try:
                with write:
                    conn.sendall(packets)
            except OSError:
                return
