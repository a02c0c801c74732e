//! The web page of `ilink sim`, driven headless through WebDriver (Debian's `chromium` and
//! `chromium-driver`): a QR login confirmed on the page, a text round trip with `ilink echo`,
//! an image and a voice message from the page to the bot and back, and an injected fault.
//! Every step checks what the page shows and saves a screenshot under
//! `target/browser-tests/`.
//!
//! Without chromedriver the test is skipped with a notice, unless `CI` is set: then it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ilink");
const USER: &str = "me@im.wechat";

/// Kills a child process this test started when the test ends, however it ends.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain([
        PathBuf::from("/usr/bin"),
        PathBuf::from("/usr/lib/chromium"),
    ]) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// One HTTP/1.1 request on a fresh connection; returns (status, body). The body is read by
/// its `Content-Length` (or chunks), since chromedriver may keep the connection open.
fn http(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let (mut len, mut chunked) = (None, false);
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            len = v.trim().parse::<usize>().ok();
        }
        if l.starts_with("transfer-encoding:") && l.contains("chunked") {
            chunked = true;
        }
    }
    let mut out = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            let n = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).unwrap();
            out.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = len {
        out.resize(n, 0);
        r.read_exact(&mut out).unwrap();
    } else {
        r.read_to_end(&mut out).unwrap();
    }
    (status, out)
}

/// A minimal W3C WebDriver client.
struct Driver {
    addr: String,
    session: String,
    _process: Kill,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Driver {
    fn start(chromedriver: &Path, chromium: Option<&Path>, profile: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = Kill(
            Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut options = json!({"args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--window-size=1280,860", "--autoplay-policy=no-user-gesture-required",
            // A fake microphone (a beep) that needs no permission prompt.
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            format!("--user-data-dir={}", profile.display()),
        ]});
        if let Some(bin) = chromium {
            options["binary"] = json!(bin.display().to_string());
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options}}});
        let (status, body) = http(&addr, "POST", "/session", Some(&caps));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 200, "new session: {v}");
        let session = v["value"]["sessionId"].as_str().unwrap().to_owned();
        Self {
            addr,
            session,
            _process: process,
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, out) = http(
            &self.addr,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_ref(),
        );
        let v: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
        assert_eq!(status, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url})));
    }

    fn find(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT].as_str().unwrap().to_owned()
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("/element/{e}/click"), Some(json!({})));
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("/element/{e}/clear"), Some(json!({})));
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        );
    }

    /// Runs `script` (a function body; `arguments[0]` is `arg`) and returns its value.
    fn js(&self, script: &str, arg: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": [arg]})),
        )
    }

    /// Runs an async script: it calls `arguments[arguments.length - 1]` with its result.
    fn js_async(&self, script: &str, arg: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/async",
            Some(json!({"script": script, "args": [arg]})),
        )
    }

    /// Re-runs `script` until it returns something other than null/false/0/"".
    fn wait_for(&self, what: &str, script: &str, arg: Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.js(script, arg.clone());
            let truthy = !(v.is_null()
                || v == json!(false)
                || v == json!(0)
                || v == json!("")
                || v.as_f64().is_some_and(f64::is_nan));
            if truthy {
                return v;
            }
            if Instant::now() > deadline {
                let page = self.js("return document.body.innerText", Value::Null);
                panic!("the page never showed {what}; it shows:\n{page}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        let png = STANDARD
            .decode(self.cmd("GET", "/screenshot", None).as_str().unwrap())
            .unwrap();
        let dir = target_dir().join("browser-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Ends the browser; chromedriver itself is killed by `_process` afterwards.
        let session = format!("/session/{}", self.session);
        let addr = self.addr.clone();
        let done = std::thread::spawn(move || {
            let _ = http(&addr, "DELETE", &session, None);
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A real 48×48 RGB PNG (a gradient), deflate "stored" blocks, so the browser can draw it.
fn png() -> Vec<u8> {
    let (w, h) = (48u32, 48u32);
    let mut raw = Vec::new();
    for y in 0..h {
        raw.push(0);
        for x in 0..w {
            raw.extend([(x * 5) as u8, (y * 5) as u8, 160]);
        }
    }
    let mut z = vec![0x78, 0x01, 0x01];
    let len = raw.len() as u16;
    z.extend(len.to_le_bytes());
    z.extend((!len).to_le_bytes());
    z.extend(&raw);
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    z.extend(((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |ty: &[u8], data: &[u8]| {
        out.extend((data.len() as u32).to_be_bytes());
        let body = [ty, data].concat();
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &z);
    chunk(b"IEND", &[]);
    out
}

/// A 16-bit mono WAV of a 440 Hz tone, `ms` long at 16 kHz (the emulator resamples).
fn wav(ms: u32) -> Vec<u8> {
    let rate = 16_000u32;
    let n = rate * ms / 1000;
    let mut out = Vec::new();
    out.extend(b"RIFF");
    out.extend((36 + n * 2).to_le_bytes());
    out.extend(b"WAVEfmt ");
    out.extend(16u32.to_le_bytes());
    out.extend(1u16.to_le_bytes());
    out.extend(1u16.to_le_bytes());
    out.extend(rate.to_le_bytes());
    out.extend((rate * 2).to_le_bytes());
    out.extend(2u16.to_le_bytes());
    out.extend(16u16.to_le_bytes());
    out.extend(b"data");
    out.extend((n * 2).to_le_bytes());
    for i in 0..n {
        let s = ((i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 8000.0) as i16;
        out.extend(s.to_le_bytes());
    }
    out
}

/// Starts `ilink sim` and returns it with its page, base and CDN URLs.
fn start_sim() -> (Kill, String, String, String) {
    let mut child = Command::new(BIN)
        .args([
            "sim",
            "--port",
            "0",
            "--hold-ms",
            "300",
            "--manual-login",
            "--open",
        ])
        .env_remove("ILINK_SIM_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let (mut base, mut cdn) = (String::new(), String::new());
    while base.is_empty() || cdn.is_empty() {
        let line = lines.next().expect("ilink sim printed its URLs").unwrap();
        if let Some(v) = line.strip_prefix("base URL:") {
            base = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("CDN URL:") {
            cdn = v.trim().to_owned();
        }
    }
    // Keep reading stdout so the emulator never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Kill(child), first, base, cdn)
}

fn ilink(base: &str, cdn: &str, dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    for var in [
        "ILINK_BASE_URL",
        "ILINK_CDN_BASE_URL",
        "ILINK_STATE_DIR",
        "ILINK_ACCOUNT",
        "RUST_LOG",
    ] {
        c.env_remove(var);
    }
    c.arg("--base-url")
        .arg(base)
        .arg("--cdn-base-url")
        .arg(cdn)
        .arg("--state-dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null());
    c
}

#[test]
fn the_page_plays_the_phone_for_an_echo_bot() {
    let Some(chromedriver) = which(&["chromedriver"]) else {
        if std::env::var_os("CI").is_some() {
            panic!("chromedriver is missing: .ci/run installs Debian's chromium-driver");
        }
        eprintln!(
            "NOTICE: skipping the browser test: no chromedriver (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let chromium = which(&["chromium", "chromium-browser", "google-chrome"]);
    let work = tempfile::tempdir().unwrap();
    let (_sim, page, base, cdn) = start_sim();
    assert!(
        page.starts_with("http://127.0.0.1:"),
        "--open prints the page first: {page}"
    );
    let driver = Driver::start(
        &chromedriver,
        chromium.as_deref(),
        &work.path().join("profile"),
    );
    driver.goto(&page);
    driver.wait_for(
        "the live dot",
        "return document.getElementById('live').classList.contains('on')",
        Value::Null,
    );

    // 1. QR login: `ilink login` waits; the page scans and confirms.
    let state = work.path().join("state");
    let login = Kill(
        ilink(&base, &cdn, &state, &["login"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    driver.wait_for(
        "a pending QR code",
        "return document.querySelector('.qr-session .qr-scan') !== null",
        Value::Null,
    );
    driver.click(".qr-session .qr-scan");
    driver.wait_for("the scan", "const s = document.querySelector('.qr-session'); return s && s.dataset.status === 'scaned'", Value::Null);
    driver.type_into(".qr-session .qr-user", USER);
    driver.click(".qr-session .qr-confirm");
    let out = {
        let mut login = login;
        let status = login.0.wait().unwrap();
        let mut out = String::new();
        login
            .0
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert!(status.success(), "ilink login failed: {out}");
        out
    };
    assert!(out.contains("Logged in as "), "{out}");
    let bot_id = driver.wait_for(
        "the confirmed login and its bot",
        "const s = document.querySelector('.qr-session[data-status=confirmed]'); const b = document.querySelector('.bot'); return s && b ? b.dataset.bot : null",
        Value::Null,
    );
    assert!(bot_id.as_str().unwrap().ends_with("@im.bot"), "{bot_id}");
    assert!(out.contains(bot_id.as_str().unwrap()), "{out}");
    driver.screenshot("1-qr-login");

    // 2. A text round trip with `ilink echo`.
    let _echo = Kill(
        ilink(&base, &cdn, &state, &["echo"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    driver.type_into("#chat-user", USER);
    driver.click("#chat-open");
    driver.type_into("#composer-text", "hello from the page");
    driver.click("#send-text");
    driver.wait_for(
        "the echoed text",
        "return [...document.querySelectorAll('.msg.out .bubble')].some(b => b.innerText.includes('echo: hello from the page'))",
        Value::Null,
    );
    assert!(
        driver
            .js("return [...document.querySelectorAll('.msg.in .bubble')].some(b => b.innerText.includes('hello from the page'))", Value::Null)
            .as_bool()
            .unwrap()
    );
    let budget = driver.js(
        "return document.getElementById('budget').innerText",
        Value::Null,
    );
    assert!(
        budget.as_str().unwrap().contains("replies left: 9 of 10"),
        "{budget}"
    );
    driver.screenshot("2-text-round-trip");

    // 3. An image from the page to the bot and back, shown inline with the same bytes.
    let image = png();
    let image_path = work.path().join("gradient.png");
    std::fs::write(&image_path, &image).unwrap();
    let e = driver.find("#file-image");
    driver.cmd(
        "POST",
        &format!("/element/{e}/value"),
        Some(json!({"text": image_path.display().to_string()})),
    );
    driver.wait_for(
        "the bot's image, drawn",
        "const i = document.querySelector('.msg.out img.media-image'); return i && i.complete && i.naturalWidth === 48",
        Value::Null,
    );
    let shown = driver.js_async(
        "const done = arguments[arguments.length - 1];
         const i = document.querySelector('.msg.out img.media-image');
         fetch(i.src).then(r => r.arrayBuffer()).then(b => {
           let s = ''; for (const x of new Uint8Array(b)) s += String.fromCharCode(x); done(btoa(s));
         }).catch(e => done('error: ' + e));",
        Value::Null,
    );
    assert_eq!(
        STANDARD.decode(shown.as_str().unwrap()).unwrap(),
        image,
        "the page shows the bytes that were sent"
    );
    driver.screenshot("3-image-round-trip");

    // 4. A voice message: a WAV picked on the page, encoded to SILK by the emulator, echoed
    //    by the bot, decoded back to WAV for an <audio> element that really plays.
    let voice_path = work.path().join("tone.wav");
    std::fs::write(&voice_path, wav(1200)).unwrap();
    let e = driver.find("#file-voice");
    driver.cmd(
        "POST",
        &format!("/element/{e}/value"),
        Some(json!({"text": voice_path.display().to_string()})),
    );
    let duration = driver.wait_for(
        "the bot's voice message with a duration",
        "const a = document.querySelector('.msg.out audio.media-voice'); return a && a.readyState >= 1 && a.duration > 0 ? a.duration : null",
        Value::Null,
    );
    let d = duration.as_f64().unwrap();
    assert!(
        d > 1.0 && d < 2.0,
        "the echoed voice lasts about 1.2 s: {d}"
    );
    assert!(
        driver
            .js(
                "return document.querySelector('.msg.in audio.media-voice') !== null",
                Value::Null
            )
            .as_bool()
            .unwrap(),
        "the user's own voice message is playable too"
    );
    driver.screenshot("4-voice-round-trip");

    // 4b. A voice message recorded in the browser (chromium's fake microphone), sent as WAV,
    //     encoded to SILK by the emulator and echoed back.
    driver.click("#record-voice");
    driver.wait_for(
        "about a second of recorded audio",
        "return typeof rec !== 'undefined' && rec !== null && rec.chunks.length * 4096 >= rec.ctx.sampleRate",
        Value::Null,
    );
    driver.click("#record-voice");
    let recorded = driver.wait_for(
        "the bot's echo of the recorded voice",
        "const a = document.querySelectorAll('.msg.out audio.media-voice'); const l = a[a.length - 1]; return a.length === 2 && l.readyState >= 1 && l.duration > 0 ? l.duration : null",
        Value::Null,
    );
    assert!(
        recorded.as_f64().unwrap() >= 0.9,
        "about a second or more: {recorded}"
    );

    // 5. A fault: the next sendmessage is throttled (ret -2); the page shows the refused
    //    reply with its reason.
    driver.click("#fault-throttle");
    driver.wait_for(
        "the queued fault",
        "return document.getElementById('faults').innerText.includes('send_message overloaded')",
        Value::Null,
    );
    driver.type_into("#composer-text", "are you there?");
    driver.click("#send-text");
    let why = driver.wait_for(
        "the refused reply",
        "const r = document.querySelector('.msg.refused .why'); return r ? r.innerText : null",
        Value::Null,
    );
    assert!(why.as_str().unwrap().contains("not delivered"), "{why}");
    let answered = driver.js(
        "return document.querySelector('.msg.refused .meta.mono').innerText",
        Value::Null,
    );
    assert!(
        answered.as_str().unwrap().contains("\"ret\":-2"),
        "{answered}"
    );
    driver.screenshot("5-fault-throttled");
}
