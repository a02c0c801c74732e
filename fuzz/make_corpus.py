#!/usr/bin/env python3
"""Regenerates the committed seed corpus of every fuzz target from the real fixtures.

    python3 fuzz/make_corpus.py [FIXTURES_DIR]

FIXTURES_DIR defaults to ../shared/fixtures beside the repository (the captured wire traffic of
Tencent's client and the payloads users captured from the live server). Seeds are written to
fuzz/corpus/<target>/<name>; existing seeds of the same name are overwritten, others are kept.
Needs only python3 and the `openssl` command (to produce real AES-128-ECB ciphertext).
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def fixtures_dir():
    if len(sys.argv) > 1:
        return sys.argv[1]
    for cand in (os.path.join(ROOT, "..", "shared", "fixtures"), "/work/shared/fixtures"):
        if os.path.isdir(cand):
            return cand
    sys.exit("fixtures not found; pass the directory as the first argument")


def load(name):
    with open(os.path.join(fixtures_dir(), name), encoding="utf-8") as f:
        return json.load(f)


def walk(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from walk(v, path + "/" + k)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from walk(v, path + "/" + str(i))
    else:
        yield path, obj


def compact(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def observed():
    return load("observed-payloads.json")


def wire():
    return load("official-client-wire.json")


def monitor():
    return load("official-client-monitor-wire.json")


def aes_ecb(key_hex, plaintext):
    return subprocess.run(
        ["openssl", "enc", "-aes-128-ecb", "-K", key_hex, "-nosalt"],
        input=plaintext, capture_output=True, check=True,
    ).stdout


# ---------------------------------------------------------------- seed sets, one per target

def key_texts():
    """Every key text in the fixtures: hex aeskey, base64 aes_key in both encodings."""
    seen = {}
    sources = [("observed", e["payload"]) for e in observed()] + [("wire", wire())]
    for label, payload in sources:
        for path, v in walk(payload):
            if isinstance(v, str) and ("aes" in path.split("/")[-1]):
                seen.setdefault(v, path)
    for w in wire()["wire"]:
        body = w.get("body")
        if isinstance(body, str) and body.startswith("{"):
            for path, v in walk(json.loads(body)):
                if isinstance(v, str) and "aes" in path.split("/")[-1]:
                    seen.setdefault(v, path)
    return seen


def seeds_crypto_key():
    out = []
    for i, (text, path) in enumerate(sorted(key_texts().items())):
        out.append((f"fixture-{i}", text.encode()))
    # image_item.aeskey | media.aes_key pairs as the target splits them
    out.append(("image-pair", b"00112233445566778899aabbccddeeff|ABEiM0RVZneImaq7zN3u/w=="))
    out.append(("image-pair-bad-hex", b"00|MDAxMTIyMzM0NDU1NjY3Nzg4OTlhYWJiY2NkZGVlZmY="))
    return out


def plaintexts():
    texts = [b"", b"hello-cdn-plaintext-0123456789"]
    for s in monitor()["saved"]:
        texts.append(s["text"].encode())
    texts.append(bytes(range(100)))  # the 100-byte upload of the wire capture (rawsize 100)
    return texts


def seeds_crypto_decrypt():
    key_hex = "49009329a07bd051433b8a96781c72ef"  # the key of the captured upload
    key = bytes.fromhex(key_hex)
    out = []
    for i, p in enumerate(plaintexts()):
        ct = aes_ecb(key_hex, p)
        out.append((f"valid-{i}", key + bytes([i * 13]) + ct))
    ct = aes_ecb(key_hex, b"hello-cdn-plaintext-0123456789")
    out.append(("wrong-key", bytes(16) + b"\x05" + ct))
    out.append(("truncated", key + b"\x01" + ct[:-3]))
    out.append(("empty", key + b"\x00"))
    return out


def seeds_crypto_roundtrip():
    key = bytes.fromhex("00112233445566778899aabbccddeeff")
    return [(f"plain-{i}", key + bytes([i * 5 + 1]) + p) for i, p in enumerate(plaintexts())]


def observed_by(endpoint_part, direction):
    return [e for e in observed()
            if endpoint_part in e["endpoint"] and e["direction"] == direction
            and isinstance(e["payload"], (dict, list))]


def inbound_messages():
    """Every inbound message of the fixtures, as JSON values."""
    msgs = [e["payload"] for e in observed_by("getupdates", "inbound-message")]
    for e in observed_by("getupdates", "response"):
        msgs.extend(e["payload"].get("msgs") or [])
    msgs.extend(wire()["results"]["getUpdates"]["msgs"])
    return msgs


def seeds_proto_getupdates():
    out = [("wire-getupdates", compact(wire()["results"]["getUpdates"]))]
    for e in observed_by("getupdates", "response"):
        out.append((e["id"], json.dumps(e["payload"], ensure_ascii=False, indent=1).encode()))
    for e in observed_by("getupdates", "inbound-message"):
        batch = {"msgs": [e["payload"]], "get_updates_buf": "CURSOR"}
        out.append(("batch-" + e["id"], compact(batch)))
    # One batch with every inbound message of the fixtures, plus one broken message.
    msgs = inbound_messages() + [{"seq": "not a number"}, 7]
    out.append(("batch-all", compact({"ret": 0, "msgs": msgs, "get_updates_buf": "C",
                                       "longpolling_timeout_ms": 35000})))
    out.append(("empty-object", b"{}"))
    return out


WIRE_SELECTORS = {
    # response endpoint fragment -> selector byte of proto_wire
    ("sendmessage", "response"): 0,
    ("getuploadurl", "response"): 1,
    ("getconfig", "response"): 2,
    ("sendtyping", "response"): 3,
    ("notify", "response"): 4,
    ("get_bot_qrcode", "response"): 5,
    ("get_qrcode_status", "response"): 6,
    ("getupdates", "request"): 8,
    ("sendmessage", "request"): 9,
    ("getuploadurl", "request"): 10,
    ("getconfig", "request"): 11,
    ("sendtyping", "request"): 12,
    ("notifyst", "request"): 13,
    ("get_bot_qrcode", "request"): 14,
}


def seeds_proto_wire():
    out = []
    for e in observed():
        if not isinstance(e["payload"], (dict, list)):
            continue
        for (frag, direction), sel in WIRE_SELECTORS.items():
            if frag in e["endpoint"] and e["direction"] == direction:
                out.append((e["id"], bytes([sel]) + compact(e["payload"])))
                out.append(("envelope-" + e["id"], bytes([7]) + compact(e["payload"])))
                break
    for i, w in enumerate(wire()["wire"]):
        body = w.get("body")
        if not (isinstance(body, str) and body.startswith("{")):
            continue
        for (frag, direction), sel in WIRE_SELECTORS.items():
            if frag in w["path"] and direction == "request":
                out.append((f"wire-request-{i}", bytes([sel]) + body.encode()))
                break
    res = wire()["results"]
    out.append(("wire-getconfig", bytes([2]) + compact(res["getConfig"])))
    out.append(("wire-notifystart", bytes([4]) + compact(res["notifyStart"])))
    paths = sorted({w["path"] for w in wire()["wire"]})
    for i, p in enumerate(paths):
        out.append((f"path-{i}", bytes([15]) + p.encode()))
    for s in ["wait", "scaned", "need_verifycode", "verify_code_blocked", "expired",
              "scaned_but_redirect", "binded_redirect", "confirmed"]:
        out.append(("qr-" + s, bytes([15]) + s.encode()))
    return out


# ---------------------------------------------------------------- voice and audio seeds
# Small synthetic voice-like signals. The SILK seeds are made with silk-python (pysilk), the
# reference encoder `cargo xtask bench` also measures; compressed audio with ffmpeg. A tool
# that is missing only skips its seeds.

def tone(rate, seconds, channels=1, amp=9000):
    import math
    import struct
    n = int(rate * seconds)
    frames = []
    for i in range(n):
        t = i / rate
        v = sum(math.sin(2 * math.pi * 150 * k * t) / k for k in range(1, 4))
        sample = int(max(-1.0, min(1.0, v * 0.4)) * amp)
        frames.append(struct.pack("<" + "h" * channels, *([sample] * channels)))
    return b"".join(frames)


def wav(rate, seconds, channels=1, width=2):
    import io
    import wave
    pcm = tone(rate, seconds, channels)
    if width == 1:  # 8-bit WAV is unsigned
        pcm = bytes(((int.from_bytes(pcm[i:i + 2], "little", signed=True) >> 8) + 128) & 0xFF
                    for i in range(0, len(pcm), 2))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


def pysilk_encode(pcm, tencent):
    try:
        import io
        import pysilk
    except ImportError:
        print("  (pysilk missing: run with a python that has silk-python to make SILK seeds)")
        return None
    out = io.BytesIO()
    pysilk.encode(io.BytesIO(pcm), out, 24000, 24000, tencent=tencent)
    return out.getvalue()


def ffmpeg(data, fmt, codec):
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "in.wav")
        dst = os.path.join(d, "out." + fmt)
        with open(src, "wb") as f:
            f.write(data)
        try:
            subprocess.run(["ffmpeg", "-v", "quiet", "-y", "-i", src, "-c:a", codec,
                            "-b:a", "32k", dst], check=True)
        except (OSError, subprocess.CalledProcessError):
            print(f"  (ffmpeg cannot make {fmt}: skipped)")
            return None
        with open(dst, "rb") as f:
            return f.read()


def seeds_silk_decode():
    out = [("doc-standard-two-packets", b"#!SILK_V3\x01\x00\xaa\x02\x00\xbb\xcc\xff\xff"),
           ("doc-standard-one-packet", b"#!SILK_V3\x01\x00\xaa\xff\xff")]
    pcm = tone(24000, 0.3)
    for name, tencent in (("pysilk-tencent-300ms", True), ("pysilk-standard-300ms", False)):
        silk = pysilk_encode(pcm, tencent)
        if silk:
            out.append((name, silk))
    return out


def seeds_silk_encode():
    return [("tone-24k-100ms", bytes([3]) + tone(24000, 0.1)),
            ("tone-16k-100ms", bytes([2 | 8]) + tone(16000, 0.1)),
            ("tone-8k-60ms", bytes([0 | 16 | 32]) + tone(8000, 0.06)),
            ("silence-20ms", bytes([3]) + bytes(960)),
            ("one-sample", bytes([3, 1, 0]))]


def seeds_audio_decode():
    out = [("wav-16bit-mono-8k", bytes([0x82]) + wav(8000, 0.2)),
           ("wav-16bit-stereo-44k", bytes([0x80]) + wav(44100, 0.05, channels=2)),
           ("wav-8bit-mono-16k", bytes([1]) + wav(16000, 0.1, width=1))]
    src = wav(24000, 0.2)
    for fmt, codec in (("mp3", "libmp3lame"), ("ogg", "libvorbis"), ("flac", "flac"),
                       ("m4a", "aac")):
        data = ffmpeg(src, fmt, codec)
        if data:
            out.append((fmt, bytes([0]) + data))
    return out


def seeds_cdn_url():
    params = set()
    for e in observed():
        for path, v in walk(e["payload"]):
            key = path.split("/")[-1]
            if isinstance(v, str) and ("param" in key or "url" in key):
                params.add(v)
    for w in wire()["wire"]:
        for v in (w.get("query") or {}).values():
            params.add(v)
    out = []
    for i, p in enumerate(sorted(params)):
        out.append((f"download-param-{i}", bytes([0]) + p.encode()))
        out.append((f"upload-param-{i}", bytes([1]) + (p + "\nb8cde5c4e26d499b948bbf5979b2451c").encode()))
    hosts = ["novac2c.cdn.weixin.qq.com", "weixin.qq.com", "evil.com", "127.0.0.1",
             "[::1]", "a.qpic.cn.", "x.weixin.qq.com.evil.com"]
    for i, h in enumerate(hosts):
        out.append((f"host-{i}", bytes([2]) + ("*.weixin.qq.com,127.0.0.1,*.qpic.cn\n" + h).encode()))
    for i, p in enumerate(plaintexts()):
        out.append((f"sniff-{i}", bytes([3]) + p))
    for m in monitor()["saved"]:
        out.append(("sniff-saved", bytes([3]) + m["text"].encode()))
    out.append(("sniff-png", bytes([3]) + b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"))
    out.append(("sniff-silk", bytes([3]) + b"\x02#!SILK_V3\x0c\x00"))
    return out


def message_texts():
    texts = set()
    for payload in [e["payload"] for e in observed()] + [wire()]:
        for path, v in walk(payload):
            if isinstance(v, str) and path.endswith("/text"):
                texts.add(v)
    for w in wire()["wire"] + monitor()["wire"]:
        body = w.get("body")
        if isinstance(body, str) and body.startswith("{"):
            for path, v in walk(json.loads(body)):
                if isinstance(v, str) and path.endswith("/text"):
                    texts.add(v)
    texts.add("**Echo**: x ![img](http://x/y.png) *斜体*")
    return sorted(texts)


def seeds_text_chunk():
    out = []
    texts = message_texts()
    for i, t in enumerate(texts):
        out.append((f"text-{i}", (20).to_bytes(2, "little") + t.encode()))
    # Long replies that must be cut: paragraphs, lines, sentences, CJK, emoji, code.
    para = "First sentence here. Second one! Third?\n" * 30 + "\n"
    cjk = "这是一个句子。这是另一个句子！" * 60
    emoji = "👍🏽👨‍👩‍👧 " * 200
    md = "# Title\n\n##### small heading\n```rust\nfn main() {}\n```\n| a | b |\n|---|---|\n*斜体* ![i](u)\n"
    for i, t in enumerate([para * 5, cjk, emoji, md * 40, " ".join(texts) * 50]):
        for limit in (4000, 200):
            out.append((f"long-{i}-{limit}", (limit - 1).to_bytes(2, "little") + t.encode()))
    return out


TARGETS = {
    "cdn_url": seeds_cdn_url,
    "text_chunk": seeds_text_chunk,
    "silk_decode": seeds_silk_decode,
    "silk_encode": seeds_silk_encode,
    "audio_decode": seeds_audio_decode,
    "proto_getupdates": seeds_proto_getupdates,
    "proto_wire": seeds_proto_wire,
    "crypto_key": seeds_crypto_key,
    "crypto_decrypt": seeds_crypto_decrypt,
    "crypto_roundtrip": seeds_crypto_roundtrip,
}


def main():
    only = set(os.environ.get("TARGETS", "").split()) or set(TARGETS)
    for target, make in TARGETS.items():
        if target not in only:
            continue
        d = os.path.join(HERE, "corpus", target)
        os.makedirs(d, exist_ok=True)
        seeds = make()
        for name, data in seeds:
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print(f"{target}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
