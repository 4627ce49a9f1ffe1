#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus, fuzz/corpus/<target>/, from the inputs below.

Each seed is a realistic input of the kind the target reads: the protocol's messages as
docs/protocol.md shows them, a browser's publishing offer, STUN, DTLS, RTP and RTCP as browsers
send them, signed join links. Run from anywhere; needs only openssl (for the RS256 token).
The seeds are committed; this says where each came from and regenerates them exactly.
"""

import base64
import hashlib
import hmac
import json
import os
import struct
import subprocess
import zlib

FUZZ = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(FUZZ)
OFFER = open(os.path.join(FUZZ, "fuzz_targets/common/browser_offer.sdp"), "rb").read()


def write(target, name, data):
    folder = os.path.join(FUZZ, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# -- http_headers: Origin, Sec-Fetch-Site, then X-Forwarded-For lines, one per line ----------

write("http_headers", "proxied", "https://meet.example.nl\nsame-origin\n203.0.113.5, 10.0.0.2\n192.0.2.1")
write("http_headers", "two-lines", "null\ncross-site\n1.2.3.4\n203.0.113.5")
write("http_headers", "ipv6", "HTTP://[::1]:8080/x\n\n::ffff:10.0.0.2, 2001:db8::1")


# -- signalling_message: every client message of docs/protocol.md ---------------------------

PEER = "p8Jk2Lm4Nq6R"
MESSAGES = {
    "join": {"type": "join", "version": 1, "room": "maths-3b", "name": "Alice",
             "audioMuted": False, "videoMuted": True, "jwt": "eyJhbGciOiJIUzI1NiJ9.e30.x",
             "password": "geheim", "rejoinKey": "q8Zt1kP0sR7vW2xY"},
    "join-resume": {"type": "join", "version": 1, "room": "maths-3b", "name": " Zoë ",
                    "resume": "Vq3aB7cD9eF1gH2i"},
    "offer": {"type": "offer", "sdp": OFFER.decode()[:600]},
    "answer": {"type": "answer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"},
    "candidate": {"type": "candidate",
                  "candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host",
                  "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "Qx7b"},
    "mute": {"type": "mute", "audioMuted": True, "videoMuted": False},
    "leave": {"type": "leave"},
    "chat": {"type": "chat", "text": "Goedemorgen!"},
    "chat-to": {"type": "chat", "text": "alleen voor jou", "to": PEER},
    "screen": {"type": "screen", "active": True},
    "restart-media": {"type": "restart-media"},
    "receive-video": {"type": "receive-video",
                      "heights": {PEER: 270, PEER + "~screen": 1080, "q1w2e3r4t5y6": 0},
                      "lastN": 6},
    "hand": {"type": "hand", "raised": True},
    "request-unmute": {"type": "request-unmute", "kind": "audio"},
    "mute-participant": {"type": "mute-participant", "id": PEER, "kind": "video"},
    "allow-unmute": {"type": "allow-unmute", "id": PEER, "kind": "audio"},
    "lock-unmute": {"type": "lock-unmute", "kind": "audio", "locked": True},
    "remove": {"type": "remove", "id": PEER, "bar": True},
    "promote": {"type": "promote", "id": PEER},
    "lock-room": {"type": "lock-room", "locked": True},
    "set-password": {"type": "set-password", "password": "geheim"},
    "set-lobby": {"type": "set-lobby", "enabled": True},
    "admit": {"type": "admit", "id": PEER},
    "deny": {"type": "deny", "id": PEER},
    "end-conference": {"type": "end-conference"},
}
for name, message in MESSAGES.items():
    write("signalling_message", name, json.dumps(message, ensure_ascii=False))

# -- sdp_offer: the browser offer with trickled candidates, and plainer offers ---------------

CANDIDATES = [
    "candidate:1 1 udp 2122260223 192.0.2.10 54321 typ host generation 0 ufrag Qx7b",
    "candidate:2 1 udp 1686052607 203.0.113.5 61000 typ srflx raddr 192.0.2.10 rport 54321",
    "candidate:3 1 tcp 1518280447 192.0.2.10 9 typ host tcptype active",
    "",
]
write("sdp_offer", "browser-offer", OFFER + b"\0" + "\0".join(CANDIDATES).encode())
audio_only = OFFER.split(b"\r\nm=video")[0].replace(b"BUNDLE 0 1 2", b"BUNDLE 0") + b"\r\n"
write("sdp_offer", "audio-only", audio_only)
# A camera without simulcast announces its SSRCs instead of rids, as Chromium does then.
without_simulcast = OFFER.replace(
    b"a=rid:q send\r\na=rid:h send\r\na=rid:f send\r\na=simulcast:send q;h;f\r\n",
    b"a=ssrc-group:FID 3735928559 3405691582\r\n"
    b"a=ssrc:3735928559 cname:k2Vn8sQ1xLp4TzRb\r\n"
    b"a=ssrc:3735928559 msid:3f1c2a9e-5b7d-4c1e-9a0b-7d2e4f6a8c10 5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a\r\n"
    b"a=ssrc:3405691582 cname:k2Vn8sQ1xLp4TzRb\r\n"
    b"a=ssrc:3405691582 msid:3f1c2a9e-5b7d-4c1e-9a0b-7d2e4f6a8c10 5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a\r\n")
assert without_simulcast != OFFER
write("sdp_offer", "no-simulcast", without_simulcast)

# -- STUN, as Chromium sends its connectivity checks -----------------------------------------

def stun(username, attributes=(), password=None, method=0x0001, txid=b"\x5a" * 12):
    """A STUN message; with a password, MESSAGE-INTEGRITY and FINGERPRINT as RFC 5389 says."""
    def attr(kind, value):
        return struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)

    body = attr(0x0006, username.encode()) if username is not None else b""
    for kind, value in attributes:
        body += attr(kind, value)
    header = lambda length: struct.pack("!HH", method, length) + b"\x21\x12\xa4\x42" + txid
    if password is not None:
        mac = hmac.new(password.encode(), header(len(body) + 24) + body, hashlib.sha1).digest()
        body += attr(0x0008, mac)
        crc = zlib.crc32(header(len(body) + 8) + body) ^ 0x5354554E
        body += attr(0x8028, struct.pack("!I", crc))
    return header(len(body)) + body


CHECK_ATTRIBUTES = [
    (0xC057, struct.pack("!HH", 1, 10)),              # GOOG-NETWORK-INFO
    (0x802A, struct.pack("!Q", 0x1234567890ABCDEF)),  # ICE-CONTROLLING
    (0x0025, b""),                                    # USE-CANDIDATE
    (0x0024, struct.pack("!I", 1853817087)),          # PRIORITY
]

# -- demux: [control, length, datagram] records ------------------------------------------------

def record(control, datagram):
    assert len(datagram) < 256
    return bytes([control, len(datagram)]) + datagram


check_a = stun("serverfragA0000a:Qx7b", CHECK_ATTRIBUTES, password="V3kTq8yLm2Zp9RcA1fGh4Jw6")
check_b = stun("serverfragB0000b:Rt9c", CHECK_ATTRIBUTES[1:], password="x" * 24)
srtp = bytes([0x90, 0xE0, 0x12, 0x34]) + b"\x00" * 8 + b"\xAB" * 40
srtcp = bytes([0x80, 0xC8, 0x00, 0x06]) + b"\x01\x02\x03\x04" + b"\xCD" * 40
dtls = bytes([0x16, 0xFE, 0xFD]) + b"\x00" * 10 + b"\x01\x00"
write("demux", "checks-then-media", record(1, check_a) + record(1, srtp) + record(2, check_b)
      + record(2, srtcp) + record(3, srtp))
write("demux", "rebinding", record(1, check_a) + record(9, check_a) + record(17, check_a)
      + record(1, srtp) + record(9, dtls))
# A check that names A without proving the password, from an address of its choosing.
forged = stun("serverfragA0000a:Qx7b", CHECK_ATTRIBUTES)
write("demux", "forged-rebinding", record(1, check_a) + record(5, forged) + record(5, srtp)
      + record(1, srtp))
write("demux", "leave-and-return", record(1, check_a) + record(0xC0, b"\x00") + record(1, srtp)
      + record(0xE0, b"\x00") + record(1, check_a) + record(1, srtp))

# -- ice_tcp_frames: [step, the bytes of an ICE-TCP connection] ------------------------------

def frame(datagram):
    return len(datagram).to_bytes(2, "big") + datagram


write("ice_tcp_frames", "check-then-media", bytes([5]) + frame(check_a) + frame(dtls) + frame(b"")
      + frame(srtp) + frame(srtcp))
write("ice_tcp_frames", "one-byte-reads", bytes([1]) + frame(check_b) + frame(srtp))
write("ice_tcp_frames", "too-long", bytes([3]) + frame(check_a) + b"\xff\xff" + srtp)

# -- stun: [mode, datagram] into a media core --------------------------------------------------

check = stun("fuzzufrag0000000:Qx7b", CHECK_ATTRIBUTES, password="unknown-to-the-client-00")
write("stun", "binding-request", b"\x00" + check)
write("stun", "binding-request-signed", b"\x01" + check)
write("stun", "binding-indication", b"\x01" + stun(None, [], method=0x0011))
write("stun", "wrong-ufrag", b"\x00" + stun("someoneelse00000:Qx7b", CHECK_ATTRIBUTES))


def dtls_client_hello():
    """A DTLS 1.2 ClientHello as Chromium offers it for DTLS-SRTP (RFC 6347, RFC 5764)."""
    def ext(kind, value):
        return struct.pack("!HH", kind, len(value)) + value

    suites = [0xC02B, 0xC02F, 0xCCA9, 0xCCA8, 0xC009, 0xC013, 0xC00A, 0xC014]
    extensions = (
        ext(0x0017, b"")                                                  # extended master secret
        + ext(0xFF01, b"\x00")                                            # renegotiation info
        + ext(0x000A, struct.pack("!HHHH", 6, 0x001D, 0x0017, 0x0018))    # supported groups
        + ext(0x000B, b"\x01\x00")                                        # point formats
        + ext(0x000D, struct.pack("!H", 8) + bytes.fromhex("0403080404010201"))  # signatures
        + ext(0x000E, struct.pack("!H", 6) + bytes.fromhex("000700080001") + b"\x00")  # use_srtp
    )
    body = (b"\xFE\xFD" + b"\x42" * 32 + b"\x00" + b"\x00"  # version, random, session, cookie
            + struct.pack("!H", 2 * len(suites)) + b"".join(struct.pack("!H", s) for s in suites)
            + b"\x01\x00" + struct.pack("!H", len(extensions)) + extensions)
    handshake = (b"\x01" + struct.pack("!I", len(body))[1:] + b"\x00\x00"
                 + b"\x00\x00\x00" + struct.pack("!I", len(body))[1:] + body)
    return b"\x16\xFE\xFF" + b"\x00" * 8 + struct.pack("!H", len(handshake)) + handshake


write("stun", "dtls-client-hello", b"\x02" + dtls_client_hello())
write("stun", "srtp", b"\x02" + srtp)
write("stun", "srtcp", b"\x03" + srtcp)

# -- rtp_rewrite: [8 bytes of negotiation, packet] ---------------------------------------------

def rtp(pt, seq, ts, ssrc, payload, extensions=(), profile=0xBEDE, marker=False, padding=0):
    block = b""
    for ext_id, value in extensions:
        if profile == 0xBEDE:
            block += bytes([(ext_id << 4) | (len(value) - 1)]) + value
        else:
            block += bytes([ext_id, len(value)]) + value
    block += b"\0" * (-len(block) % 4)
    first = 0x80 | (0x20 if padding else 0) | (0x10 if extensions else 0)
    packet = struct.pack("!BBHII", first, pt | (0x80 if marker else 0), seq, ts, ssrc)
    if extensions:
        packet += struct.pack("!HH", profile, len(block) // 4) + block
    packet += payload
    if padding:
        packet += b"\0" * (padding - 1) + bytes([padding])
    return packet


# Publisher ids: audio level 1, playout delay 5, orientation 13, as Chromium numbers them; the
# subscriber's picked from its free ids; VP8 on 96, Opus on 111.
NEGOTIATION = bytes([1, 5, 13, 1, 2, 4, 96, 111])
VP8_KEY = bytes.fromhex("9080800050 2d019d012a 8002 6801".replace(" ", "")) + b"\x11" * 40
write("rtp_rewrite", "opus-audio-level", NEGOTIATION + rtp(
    111, 1000, 48000, 0xA1A1A1A1, b"\xFC\xFF\xFE" + b"\x55" * 60,
    [(3, b"\x00\x07"), (1, b"\x9E"), (4, b"0")]))
write("rtp_rewrite", "vp8-keyframe", NEGOTIATION + rtp(
    96, 20000, 90000, 0xB2B2B2B2, VP8_KEY,
    [(3, b"\x00\x08"), (5, b"\x00\x00\x00"), (13, b"\x01"), (10, b"q")], marker=True))
write("rtp_rewrite", "h264-stap-a", NEGOTIATION + rtp(
    102, 7, 3000, 0xC3C3C3C3, bytes.fromhex("1800056742c01fda0004") + b"\x68\xce\x3c\x80"
    + b"\x00\x03\x65\x88\x84", [(3, b"\x00\x09")]))
write("rtp_rewrite", "two-byte-extensions", NEGOTIATION + rtp(
    96, 20001, 90000, 0xB2B2B2B2, VP8_KEY, [(3, b"\x00\x0a"), (5, b"\x00\x01\x00" * 6)],
    profile=0x1000))
write("rtp_rewrite", "padding-probe", NEGOTIATION + rtp(
    96, 20002, 93000, 0xB2B2B2B2, b"", [(3, b"\x00\x0b")], padding=224))

# -- rtcp: decrypted compound packets as browsers send them -----------------------------------

def rtcp(count, pt, body):
    body += b"\0" * (-len(body) % 4)
    return struct.pack("!BBH", 0x80 | count, pt, len(body) // 4) + body


SENDER, MEDIA = 0x0A0B0C0D, 0x01020304
rr = rtcp(1, 201, struct.pack("!II", SENDER, MEDIA) + b"\x00\x00\x00\x02"
          + struct.pack("!IIII", 20063, 12, 0x12345678, 0x00010000))
cname = b"k2Vn8sQ1xLp4TzRb"
sdes = rtcp(1, 202, struct.pack("!I", SENDER) + bytes([1, len(cname)]) + cname + b"\x00")
pli = rtcp(1, 206, struct.pack("!II", SENDER, MEDIA))
fir = rtcp(4, 206, struct.pack("!IIIB", SENDER, 0, MEDIA, 7) + b"\0\0\0")
nack = rtcp(1, 205, struct.pack("!IIHHHH", SENDER, MEDIA, 10, 0b1010_0000_0000_0101, 60, 0xFFFF))
# Transport-wide feedback on the 64 packets the target sent: one run of small deltas, 5 ms each.
twcc = rtcp(15, 205, struct.pack("!IIHH", SENDER, MEDIA, 0, 64) + b"\x00\x00\x10" + b"\x00"
            + struct.pack("!H", 0x2000 | 64) + bytes([20] * 64))
# The same with one packet lost in the middle, as a status vector chunk and a run.
twcc_loss = rtcp(15, 205, struct.pack("!IIHH", SENDER, MEDIA, 0, 64) + b"\x00\x00\x11" + b"\x01"
                 + struct.pack("!HH", 0xBFBF, 0x2000 | 50) + bytes([20] * 13) + bytes([20] * 50))
remb = rtcp(15, 206, struct.pack("!II", SENDER, 0) + b"REMB"
            + struct.pack("!BBH", 1, (3 << 2) | 0x03, 0xD090) + struct.pack("!I", MEDIA))
sr = rtcp(0, 200, struct.pack("!IIIIII", SENDER, 0xE5F0A1B2, 0x33333333, 90000, 100, 12000))
bye = rtcp(1, 203, struct.pack("!I", SENDER))
write("rtcp", "receiver-report", rr + sdes)
write("rtcp", "pli", rr + pli)
write("rtcp", "fir", fir)
write("rtcp", "nack", rr + nack)
write("rtcp", "twcc", twcc)
write("rtcp", "twcc-loss", twcc_loss)
write("rtcp", "remb", rr + remb)
write("rtcp", "sender-report-bye", sr + sdes + bye)

# -- codec_frames: [codec selector, payload]; 0 VP8, 1 H.264, 2 another codec ----------------

write("codec_frames", "vp8-keyframe", b"\x00" + bytes.fromhex("10502d019d012a80026801"))
write("codec_frames", "vp8-keyframe-extended", b"\x00" + bytes.fromhex(
    "90e08123054050 2d019d012a0005d002".replace(" ", "")))
write("codec_frames", "vp8-delta", b"\x00" + bytes.fromhex("9080a34051000000"))
write("codec_frames", "h264-idr", b"\x01" + bytes.fromhex("6588840021"))
write("codec_frames", "h264-stap-a", b"\x01" + bytes.fromhex("18000267420002 68ce".replace(" ", "")))
write("codec_frames", "h264-fu-a", b"\x01" + bytes.fromhex("7c858884"))
write("codec_frames", "other", b"\x02" + bytes.fromhex("aa0000"))

# -- jwt: signed join links for the target's settings -----------------------------------------

def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(header, claims, sign):
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    return signing_input + "." + b64(sign(signing_input.encode()))


SECRET = b"fuzzing-secret-of-at-least-32-bytes!"
hs256 = lambda data: hmac.new(SECRET, data, hashlib.sha256).digest()


def rs256(data):
    key = os.path.join(ROOT, "tests/fixtures/rs256-private.pem")
    return subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=data,
                          capture_output=True, check=True).stdout


CLAIMS = {"iss": "reservations", "aud": "zaal", "sub": "school", "room": "maths-3b",
          "exp": 4102444800, "nbf": 1700000000, "iat": 1700000000,
          "context": {"user": {"name": "Ms. Jansen", "moderator": "true"}}}
write("jwt", "hs256", token({"alg": "HS256", "typ": "JWT"}, CLAIMS, hs256))
write("jwt", "hs256-any-room", token({"alg": "HS256", "typ": "JWT"},
                                     dict(CLAIMS, room="*", moderator=True, context={}), hs256))
write("jwt", "rs256", token({"alg": "RS256", "typ": "JWT"}, CLAIMS, rs256))
write("jwt", "expired", token({"alg": "HS256"}, dict(CLAIMS, exp=1000000000), hs256))
write("jwt", "alg-none", token({"alg": "none"}, CLAIMS, lambda _: b""))
