"""SDP offers checked before anything else sees them: bounded, linear, in the web layer.

Why this exists: aiortc's SDP parser (run twice per offer by the media room) is
quadratic in some lines — distinct `a=ssrc` values are looked up in a list, every
`a=rtcp-fb` and `a=fmtp` line scans the m-line's codecs — so one large offer from any
join-token holder froze the event loop for seconds. And aiortc raises whatever a
broken line provokes, after the conference has already recorded the centre's answer
(a WHIP publisher's offer is its answer to the ring). So every offer passes through
`check_offer` first:

- one pass over the lines, each looked at once with anchored regular expressions
  whose accepted language is a subset of what aiortc's parser takes (so an offer that
  passes cannot make the parser raise), never a nested scan;
- counts bounded per section (`MAX_*` below) and m-lines bounded by role
  (`OfferLimits`), which also bounds aiortc's quadratic parts: with these bounds an
  invited centre's worst offer parses in ~15 ms on this project's 2-core machines;
- what aiortc and the media room would refuse later refused now, naming the attribute:
  no or broken `a=fingerprint`, no `a=ice-ufrag`/`a=ice-pwd`, no `a=rtcp-mux`, no
  `a=setup`, no `a=mid` or an m-line outside the BUNDLE group, no codec the server
  receives, no room codec on an m-line the client receives on.

Invariant: `check_offer` returns only offers that aiortc's `setRemoteDescription` and
the media room accept (tests/test_hardening_sdp.py fuzzes this); it never touches the
database and never awaits, so a refused offer changes nothing.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from dispatch.errors import InvalidInput

from .errors import TooLarge

# Per-section bounds. A Chromium 156 offer has per video m-line 34 payload types,
# 31 a=fmtp, 77 a=rtcp-fb, 164 attribute lines; the bounds leave room for more codecs.
MAX_LINE = 1024  # characters in one line (Chromium's longest: ~150)
MAX_SESSION_ATTRIBUTES = 64
MAX_MEDIA_ATTRIBUTES = 256  # attribute lines in one m-line section
MAX_FORMATS = 48  # payload types on one m-line (and so a=rtpmap / a=fmtp lines)
MAX_RTCP_FB = 128
MAX_SSRC_LINES = 32
MAX_SSRCS = 16  # distinct SSRC values in one m-line (aiortc looks each up in a list)
MAX_CANDIDATES = 64  # in one section
PARTICIPANT_MEDIA = 4  # camera, microphone, the floor's video and audio (PROTOCOL.md §5)
OPERATOR_PAIR_SHARE = 8  # the operator's offer may grow by limit/8 per invited centre

FINGERPRINT_BYTES = {"sha-256": 32, "sha-384": 48, "sha-512": 64}  # what aiortc verifies
SETUP_VALUES = ("actpass", "active", "passive")
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
RECEIVING = ("recvonly", "sendrecv")  # offer directions in which the client receives
FORBIDDEN_PT = range(72, 77)  # RTCP packet types (aiortc refuses them as payload types)

# What aiortc 1.16 can receive (aiortc.codecs.CODECS): name -> clock rate.
AUDIO_CODECS = {"opus": 48000, "g722": 8000, "pcmu": 8000, "pcma": 8000}
VIDEO_CODECS = {"vp8": 90000, "h264": 90000}

_INT = r"[0-9]{1,10}"
_INT_RE = re.compile(_INT)
_TOKEN = r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+"  # RFC 8866 token
_ICE_CHARS = re.compile(r"[A-Za-z0-9+/]+")
_ADDRESS = re.compile(r"IN (IP4|IP6) ([^ ]+)")
_MLINE = re.compile(r"m=([a-z]+) ([0-9]{1,5}) ([A-Z/]+) ([^ ].*)")
_RTPMAP = re.compile(rf"({_INT}) ([A-Za-z0-9_.\-]+)/({_INT})(?:/({_INT}))?")
_FMTP = re.compile(rf"({_INT}) (\S.*)")
_RTCP_FB = re.compile(rf"(\*|{_INT}) (\S+)(?: (\S.*))?")
_EXTMAP = re.compile(rf"({_INT})(?:/[a-z]+)? (\S+)")
_SSRC = re.compile(rf"({_INT}) ([^:\s]+):(.*)")
_SSRC_GROUP = re.compile(rf"{_TOKEN}(?: {_INT})+")
_RTCP = re.compile(rf"({_INT})(?: (IN .*))?")
_HEX_PAIR = re.compile(r"[0-9A-Fa-f]{2}")
_MID = re.compile(r"[A-Za-z0-9_.\-]{1,32}")
_MDNS = re.compile(r"[A-Za-z0-9\-]{1,64}\.local")
_FMTP_INT = ("apt", "max-fr", "max-fs", "maxplaybackrate", "minptime", "stereo",
             "useinbandfec")  # fmt: skip
_PROFILE = re.compile(r"[0-9A-Fa-f]{6}")
H264_LEVELS = frozenset({10, 11, 12, 13, 20, 21, 22, 30, 31, 32, 40, 41, 42, 50, 51, 52})


@dataclass(frozen=True)
class OfferLimits:
    """How large an offer may be: bytes, and m-lines (by the participant's role)."""

    max_bytes: int
    max_media: int

    @classmethod
    def for_role(cls, max_bytes: int, *, operator: bool, invited: int) -> OfferLimits:
        """An invited centre or a WHIP publisher offers at most four m-lines; the
        operator two plus a video and an audio per invited centre, and its offer may be
        larger by max_bytes/8 per invited centre (a Chromium receiving pair is ~5.6 KB)."""
        if not operator:
            return cls(max_bytes, PARTICIPANT_MEDIA)
        invited = max(1, invited)
        return cls(max_bytes + max_bytes // OPERATOR_PAIR_SHARE * invited, 2 + 2 * invited)

    @property
    def max_body(self) -> int:
        """A JSON body carrying such an offer: escaping adds at most 2 bytes per line."""
        return 2 * self.max_bytes + 4096


@dataclass
class _Section:
    index: int  # -1: the session
    kind: str = ""
    direction: str = ""
    mid: str | None = None
    formats: tuple[int, ...] = ()
    codecs: dict[int, tuple[str, int]] | None = None  # pt -> (name, clock rate)
    fmtp: dict[int, str] | None = None
    attributes: int = 0
    rtcp_fb: int = 0
    ssrc_lines: int = 0
    candidates: int = 0
    ssrcs: set[str] | None = None
    fingerprints: int = 0
    ufrag: bool = False
    pwd: bool = False
    setup: str = ""
    rtcp_mux: bool = False

    def where(self) -> str:
        return "the session" if self.index < 0 else f"m-line {self.index} ({self.kind})"


@dataclass(frozen=True)
class CheckedOffer:
    """An offer that passed: its text (perhaps completed for WHIP) and its m-lines."""

    sdp: str
    media: tuple[tuple[str, str, str], ...]  # (kind, mid, direction) per m-line


def _bad(message: str) -> InvalidInput:
    return InvalidInput("sdp", message)


def check_size(sdp: str, limits: OfferLimits) -> None:
    """413 for an offer over the byte limit (before any line is looked at)."""
    size = len(sdp.encode("utf-8", "surrogatepass"))
    if size > limits.max_bytes:
        raise TooLarge("sdp", f"the offer is {size} bytes; at most {limits.max_bytes}")


def check_offer(
    sdp: str, limits: OfferLimits, *, room_codec: str = "VP8", whip: bool = False
) -> CheckedOffer:
    """The offer if aiortc and the media room will take it; else InvalidInput("sdp")
    naming the attribute and the m-line, or TooLarge. Linear in the offer's length.
    For WHIP a single m-line offer without BUNDLE gets `a=group:BUNDLE` (RFC 9725
    publishers need not bundle one stream; the room answers with max-bundle only)."""
    check_size(sdp, limits)
    try:
        sdp.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad("not valid UTF-8 text (a lone surrogate)") from None
    lines = sdp.splitlines()  # as aiortc splits: every Unicode line break
    max_lines = 8 + MAX_SESSION_ATTRIBUTES + limits.max_media * (MAX_MEDIA_ATTRIBUTES + 4)
    if len(lines) > max_lines:
        raise _bad(f"{len(lines)} lines; at most {max_lines}")
    if not lines or lines[0].strip() != "v=0":
        raise _bad("must start with v=0")
    session = _Section(-1)
    media: list[_Section] = []
    groups: list[list[str]] = []
    current = session
    for number, line in enumerate(lines):
        if len(line) > MAX_LINE:
            raise _bad(f"line {number + 1} is {len(line)} characters; at most {MAX_LINE}")
        if not line:
            continue
        if len(line) < 2 or line[1] != "=" or not "a" <= line[0] <= "z":
            raise _bad(f"line {number + 1} is not type=value: {line[:40]!r}")
        kind = line[0]
        if kind == "m":
            if len(media) >= limits.max_media:
                raise _bad(f"more than {limits.max_media} m-lines")
            current = _media_line(line, len(media))
            media.append(current)
        elif kind == "c":
            if not _ADDRESS.fullmatch(line[2:]):
                raise _bad(f"c= in {current.where()}: expected 'IN IP4 address'")
        elif kind == "a":
            _attribute(current, line, groups)
        elif kind == "v" and number != 0:
            raise _bad(f"line {number + 1}: v= only once, first")
    return _finish(lines, session, media, groups, room_codec=room_codec, whip=whip)


def _media_line(line: str, index: int) -> _Section:
    m = _MLINE.fullmatch(line)
    if m is None:
        raise _bad(f"m-line {index}: expected 'm=<media> <port> <proto> <formats>'")
    kind = m.group(1)
    if kind not in ("audio", "video"):
        raise _bad(f"m-line {index}: only audio and video are taken, not {kind}")
    raw = m.group(4).split(" ")
    if len(raw) > MAX_FORMATS:
        raise _bad(f"m-line {index} ({kind}): {len(raw)} payload types; at most {MAX_FORMATS}")
    formats = []
    for item in raw:
        if not item.isascii() or not item.isdigit() or len(item) > 3 or int(item) > 127:
            raise _bad(f"m-line {index} ({kind}): payload type {item[:12]!r} is not 0-127")
        if int(item) in FORBIDDEN_PT:
            raise _bad(f"m-line {index} ({kind}): payload type {item} is reserved for RTCP")
        formats.append(int(item))
    if len(set(formats)) != len(formats):
        raise _bad(f"m-line {index} ({kind}): a payload type is listed twice")
    return _Section(index, kind=kind, formats=tuple(formats), codecs={}, fmtp={}, ssrcs=set())


class _Refused(Exception):
    """An attribute line is wrong: why (the caller adds the attribute and the section)."""


def _attribute(s: _Section, line: str, groups: list[list[str]]) -> None:
    name, colon, value = line[2:].partition(":")
    s.attributes += 1
    if s.attributes > (MAX_SESSION_ATTRIBUTES if s.index < 0 else MAX_MEDIA_ATTRIBUTES):
        limit = MAX_SESSION_ATTRIBUTES if s.index < 0 else MAX_MEDIA_ATTRIBUTES
        raise _bad(f"{s.where()}: more than {limit} attribute lines")
    check = _SESSION_ATTRIBUTES.get(name) if s.index < 0 else _MEDIA_ATTRIBUTES.get(name)
    if check is None:
        return  # an attribute aiortc does not read
    try:
        if name == "group" and s.index < 0:
            items = value.split()
            if items and items[0] == "BUNDLE":
                groups.append(items[1:])
        check(s, value if colon else None, name)
    except _Refused as exc:
        raise _bad(f"a={name} in {s.where()}: {exc}") from None


def _need(ok: object, why: str) -> None:
    if not ok:
        raise _Refused(why)


def _fingerprint(s: _Section, value: str | None, _: str) -> None:
    parts = (value or "").split()
    _need(len(parts) == 2, "expected 'a=fingerprint:<hash> <value>'")
    algorithm, digest = parts[0].lower(), parts[1].split(":")
    size = FINGERPRINT_BYTES.get(algorithm)
    if size is not None:
        _need(len(digest) == size and all(_HEX_PAIR.fullmatch(b) for b in digest),
              f"not a {algorithm} fingerprint ({size} hex bytes separated by colons)")  # fmt: skip
        s.fingerprints += 1


def _ufrag(s: _Section, value: str | None, _: str) -> None:
    _need(value and 4 <= len(value) <= 256 and _ICE_CHARS.fullmatch(value),
          "4-256 ICE characters (RFC 8839)")  # fmt: skip
    s.ufrag = True


def _pwd(s: _Section, value: str | None, _: str) -> None:
    _need(value and 22 <= len(value) <= 256 and _ICE_CHARS.fullmatch(value),
          "22-256 ICE characters (RFC 8839)")  # fmt: skip
    s.pwd = True


def _setup(s: _Section, value: str | None, _: str) -> None:
    _need(value in SETUP_VALUES, f"one of {', '.join(SETUP_VALUES)}")
    s.setup = value or ""


def _group(s: _Section, value: str | None, _: str) -> None:
    _need(value and value.split(), "expected a semantic and its items")


def _candidate(s: _Section, value: str | None, _: str) -> None:
    s.candidates += 1
    _need(s.candidates <= MAX_CANDIDATES, f"more than {MAX_CANDIDATES}")
    _need(value is not None and _candidate_ok(value),
          "expected 'foundation component transport priority address port typ type …' "
          "with a numeric address or an mDNS name")  # fmt: skip


def _extmap(s: _Section, value: str | None, _: str) -> None:
    _need(value and _EXTMAP.fullmatch(value), "expected 'a=extmap:<id>[/dir] <uri>'")


def _number(s: _Section, value: str | None, _: str) -> None:
    _need(value and _INT_RE.fullmatch(value), "a number")


def _mid(s: _Section, value: str | None, _: str) -> None:
    _need(value and _MID.fullmatch(value), "1-32 letters, digits, _ . -")
    _need(s.mid is None, "twice in one m-line")
    s.mid = value


def _rtcp(s: _Section, value: str | None, _: str) -> None:
    m = _RTCP.fullmatch(value or "")
    _need(m and (m.group(2) is None or _ADDRESS.fullmatch(m.group(2))),
          "expected 'a=rtcp:<port> [IN IP4 address]'")  # fmt: skip


def _rtcp_mux(s: _Section, value: str | None, _: str) -> None:
    s.rtcp_mux = True


def _direction(s: _Section, value: str | None, name: str) -> None:
    _need(not s.direction, "a second direction")
    s.direction = name


def _rtpmap(s: _Section, value: str | None, _: str) -> None:
    m = _RTPMAP.fullmatch(value or "")
    _need(m, "expected 'a=rtpmap:<pt> <name>/<clock rate>[/<channels>]'")
    assert m is not None and s.codecs is not None
    pt = int(m.group(1))
    _need(pt in s.formats, f"payload type {pt} is not on the m-line")
    _need(pt not in s.codecs, f"payload type {pt} mapped twice")
    s.codecs[pt] = (m.group(2).lower(), int(m.group(3)))


def _fmtp(s: _Section, value: str | None, _: str) -> None:
    m = _FMTP.fullmatch(value or "")
    _need(m, "expected 'a=fmtp:<pt> <parameters>'")
    assert m is not None and s.fmtp is not None
    pt = int(m.group(1))
    _need(pt in s.formats, f"payload type {pt} is not on the m-line")
    _need(pt not in s.fmtp, f"payload type {pt} has two a=fmtp lines")
    for param in m.group(2).split(";"):
        key, eq, v = param.partition("=")
        _need(not eq or key not in _FMTP_INT or _INT_RE.fullmatch(v), f"{key} must be a number")
    s.fmtp[pt] = m.group(2)


def _rtcp_fb(s: _Section, value: str | None, _: str) -> None:
    s.rtcp_fb += 1
    _need(s.rtcp_fb <= MAX_RTCP_FB, f"more than {MAX_RTCP_FB}")
    _need(value and _RTCP_FB.fullmatch(value), "expected 'a=rtcp-fb:<pt> <type> [<parameter>]'")


def _data_channel(s: _Section, value: str | None, _: str) -> None:
    raise _Refused("data channels are not taken")


def _ssrc_group(s: _Section, value: str | None, _: str) -> None:
    _need(value and _SSRC_GROUP.fullmatch(value), "expected 'a=ssrc-group:<semantic> <ssrc> …'")


def _ssrc(s: _Section, value: str | None, _: str) -> None:
    s.ssrc_lines += 1
    _need(s.ssrc_lines <= MAX_SSRC_LINES, f"more than {MAX_SSRC_LINES} lines")
    m = _SSRC.fullmatch(value or "")
    _need(m, "expected 'a=ssrc:<ssrc> <attribute>:<value>'")
    assert m is not None and s.ssrcs is not None
    s.ssrcs.add(m.group(1))
    _need(len(s.ssrcs) <= MAX_SSRCS, f"more than {MAX_SSRCS} different SSRCs")


# The attributes aiortc's parser reads, each with its check (others it ignores).
_SESSION_ATTRIBUTES = {"fingerprint": _fingerprint, "ice-ufrag": _ufrag, "ice-pwd": _pwd,
                       "setup": _setup, "group": _group, "msid-semantic": _group}  # fmt: skip
_MEDIA_ATTRIBUTES = {
    **_SESSION_ATTRIBUTES,
    "candidate": _candidate,
    "extmap": _extmap,
    "max-message-size": _number,
    "mid": _mid,
    "rtcp": _rtcp,
    "rtcp-mux": _rtcp_mux,
    **{d: _direction for d in DIRECTIONS},
    "rtpmap": _rtpmap,
    "fmtp": _fmtp,
    "rtcp-fb": _rtcp_fb,
    "sctpmap": _data_channel,
    "sctp-port": _data_channel,
    "ssrc-group": _ssrc_group,
    "ssrc": _ssrc,
}


def _candidate_ok(value: str) -> bool:
    bits = value.split()
    if len(bits) < 8 or bits[6] != "typ":
        return False
    if not all(_INT_RE.fullmatch(bits[i]) for i in (1, 3, 5)) or int(bits[5]) > 65535:
        return False
    if bits[2].lower() not in ("udp", "tcp") or len(bits) > 32:
        return False
    if bits[7] not in ("host", "srflx", "prflx", "relay"):
        return False
    if not _address_ok(bits[4]):
        return False
    for i in range(8, len(bits) - 1, 2):  # aiortc reads these pairs
        if bits[i] == "rport" and not _INT_RE.fullmatch(bits[i + 1]):
            return False
    return True


def _address_ok(host: str) -> bool:
    if _MDNS.fullmatch(host):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _finish(
    lines: list[str],
    session: _Section,
    media: list[_Section],
    groups: list[list[str]],
    *,
    room_codec: str,
    whip: bool,
) -> CheckedOffer:
    if not media:
        raise _bad("no audio or video m-line")
    for s in media:
        where = s.where()
        if not (s.fingerprints or session.fingerprints):
            raise _bad(f"a=fingerprint: missing in {where} (sha-256, sha-384 or sha-512)")
        if not (s.ufrag or session.ufrag):
            raise _bad(f"a=ice-ufrag: missing in {where}")
        if not (s.pwd or session.pwd):
            raise _bad(f"a=ice-pwd: missing in {where}")
        setup = s.setup or session.setup
        if not setup:
            raise _bad(f"a=setup: missing in {where}")
        if whip and setup == "passive":
            raise _bad(f"a=setup:passive in {where}: the server is the DTLS server for WHIP; "
                       "offer actpass")  # fmt: skip
        if not s.rtcp_mux:
            raise _bad(f"a=rtcp-mux: missing in {where}")
        if not s.direction:
            raise _bad(f"{where} states no direction (a=sendrecv, a=sendonly, …)")
        assert s.fmtp is not None and s.codecs is not None
        for pt in s.fmtp:
            if pt not in s.codecs:
                raise _bad(f"a=fmtp in {where}: payload type {pt} has no a=rtpmap")
        _check_codecs(s, room_codec)
    added: list[tuple[int, str]] = []  # (line index to insert before, text)
    if whip and len(media) == 1 and not groups:
        # RFC 9725 lets a publisher of one stream leave BUNDLE out (simple-whip-client
        # does); the media room answers with max-bundle only and refuses an m-line
        # outside a BUNDLE group. One m-line bundled alone is the same transport, so
        # completing the offer here changes nothing on the wire.
        only = media[0]
        if only.mid is None:
            only.mid = "0"
            added.append((len(lines), "a=mid:0"))  # the one m-line section runs to the end
        first_m = next(i for i, line in enumerate(lines) if line.startswith("m="))
        added.append((first_m, f"a=group:BUNDLE {only.mid}"))
        groups = [[only.mid]]
    mids = []
    for s in media:
        if s.mid is None:
            raise _bad(f"a=mid: missing in {s.where()}")
        mids.append(s.mid)
    if len(set(mids)) != len(mids):
        raise _bad("a=mid: two m-lines have the same mid")
    if not any(set(mids) <= set(group) for group in groups):
        raise _bad("a=group:BUNDLE must name every m-line's mid (one transport for all)")
    for at, extra in sorted(added, reverse=True):
        lines.insert(at, extra)
    text = "\r\n".join(lines) + "\r\n"
    return CheckedOffer(text, tuple((s.kind, s.mid or "", s.direction) for s in media))


def _check_codecs(s: _Section, room_codec: str) -> None:
    """aiortc refuses an m-line without a codec it knows; the room refuses a video m-line
    the client receives on without the room's codec."""
    assert s.codecs is not None and s.fmtp is not None
    known = AUDIO_CODECS if s.kind == "audio" else VIDEO_CODECS
    usable = []
    for pt, (name, clock) in s.codecs.items():
        if known.get(name) != clock:
            continue
        if name == "h264" and not _h264_ok(s.fmtp.get(pt, "")):
            continue
        usable.append(name)
    if not usable:
        names = ", ".join(sorted(known))
        raise _bad(
            f"{s.where()} offers no codec the server receives ({names}; "
            "H.264 only constrained baseline or baseline, packetization-mode=1)"
        )
    if s.kind == "video" and s.direction in RECEIVING and room_codec.lower() not in usable:
        raise _bad(f"{s.where()} receives video but does not offer {room_codec}, the codec "
                   "of every call")  # fmt: skip


def _h264_ok(fmtp: str) -> bool:
    """Constrained baseline or baseline with packetization-mode 1, as aiortc sends."""
    params = dict(p.partition("=")[::2] for p in fmtp.split(";"))
    if params.get("packetization-mode", "0").strip() != "1":
        return False
    profile = params.get("profile-level-id", "42E01F")
    if not _PROFILE.fullmatch(profile):
        return False
    idc, iop, level = int(profile[0:2], 16), int(profile[2:4], 16), int(profile[4:6], 16)
    if iop & 0x0F or level not in H264_LEVELS:
        return False
    return idc == 0x42 or (idc in (0x4D, 0x58) and (iop & 0x80) != 0)
