//! Peak memory and throughput of 1 GiB media transfers through ilink-sim (issue 7).
//!
//! ```text
//! cargo run --release -p ilink-benches --bin media_rss [-- --size-mib 1024 --keep]
//! ```
//!
//! The emulator runs in a child process (this binary, re-executed with `--serve-sim`), so the
//! resident memory read from `/proc/self/status` is the bot's alone. The bot (ilink-client):
//!
//! 0. for reference, the MD5 pass alone (`PreparedUpload::prepare`), which the upload
//!    starts with;
//! 1. **upload**: `Account::send_file` of a pseudo-random file on disk (under `target/`):
//!    the MD5 pass, getuploadurl, the encrypted upload, the emulator's check (streaming
//!    decryption and MD5) and the sendmessage;
//! 2. **download (own upload)**: `Account::download_to_file` of the item the emulated user
//!    received, compared by MD5 with the source;
//! 3. **download (inbound)**: `Account::download_to_file` of a file of the same size sent by
//!    the emulated user, compared by MD5 with what the user sent.
//!
//! Before each phase the peak is reset (`5` into `/proc/self/clear_refs`), and a thread
//! samples `VmRSS` every 2 ms; the phase's peak is the larger of `VmHWM` and the samples.
//! Prints peak RSS and MB/s per phase; exits with status 1 if a peak reaches 64 MiB or a
//! transfer does not round-trip. A measurement tool, not a test.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ilink_client::cdn::PreparedUpload;
use ilink_client::proto::{MessageItem, UploadMediaType};
use ilink_client::{
    Client, ClientConfig, Credentials, Delays, MediaSource, MemoryStore, Secret, Update,
};
use ilink_crypto::Md5Hasher;
use ilink_sim::{Sim, SimConfig};

/// The limit from issue 7.
const RSS_LIMIT_KIB: u64 = 64 * 1024;
const USER: &str = "alice@im.wechat";
const IO_CHUNK: usize = 1 << 20;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size_mib: u64 = args
        .iter()
        .position(|a| a == "--size-mib")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let size = size_mib << 20;
    let result = if args.iter().any(|a| a == "--serve-sim") {
        serve_sim(size)
    } else {
        measure(size, args.iter().any(|a| a == "--keep"))
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("media_rss: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Res<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

// ------------------------------------------------------------------------- test data

/// xorshift64*: fast, reproducible, incompressible enough for a transfer test.
struct Noise(u64);

impl Noise {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            let n = chunk.len();
            chunk.copy_from_slice(v.get(..n).unwrap_or_default());
        }
    }
}

/// Writes `size` pseudo-random bytes to `path` a chunk at a time; returns their MD5.
fn write_noise(path: &Path, size: u64, seed: u64) -> Res<String> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut noise = Noise::new(seed);
    let mut md5 = Md5Hasher::new();
    let mut buf = vec![0u8; IO_CHUNK];
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(IO_CHUNK as u64))?;
        let part = buf.get_mut(..n).ok_or("chunk")?;
        noise.fill(part);
        md5.update(part);
        file.write_all(part)?;
        left -= n as u64;
    }
    file.flush()?;
    Ok(md5.finish_hex())
}

fn md5_of_file(path: &Path) -> Res<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut md5 = Md5Hasher::new();
    let mut buf = vec![0u8; IO_CHUNK];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        md5.update(buf.get(..n).ok_or("read")?);
    }
    Ok((md5.len(), md5.finish_hex()))
}

// ---------------------------------------------------------------- the emulator process

/// The child: an emulator with uploads up to `size` + 64 MiB, one bot, and a line protocol
/// on stdin (`hello`, `inbound <seed>`, `delivered`, `quit`).
fn serve_sim(size: u64) -> Res<bool> {
    let rt = runtime()?;
    rt.block_on(async {
        let cap = usize::try_from(size + (64 << 20))?;
        let config = SimConfig::for_tests(Duration::from_secs(5))
            .without_limits()
            .with_max_upload_bytes(cap);
        let sim = Sim::start(config).await?;
        let bot = sim.create_bot();
        let user = sim.user(USER);
        let mut out = std::io::stdout().lock();
        writeln!(out, "BASE {} {}", sim.base_url(), sim.cdn_base_url())?;
        writeln!(out, "BOT {} {}", bot.bot_id, bot.token)?;
        out.flush()?;
        for line in std::io::stdin().lock().lines() {
            let line = line?;
            let mut words = line.split(' ');
            match words.next() {
                Some("hello") => {
                    user.send_text(&bot.bot_id, "hi")?;
                    writeln!(out, "OK")?;
                }
                Some("inbound") => {
                    let seed = words.next().and_then(|s| s.parse().ok()).unwrap_or(2);
                    let mut data = vec![0u8; usize::try_from(size)?];
                    Noise::new(seed).fill(&mut data);
                    let md5 = ilink_crypto::md5_hex(&data);
                    user.send_file(&bot.bot_id, "inbound.bin", &data)?;
                    drop(data);
                    writeln!(out, "INBOUND {md5}")?;
                }
                Some("delivered") => {
                    let last = sim.delivered_to(USER).pop().ok_or("nothing delivered")?;
                    writeln!(
                        out,
                        "ITEM {} {}",
                        sim.dropped().len(),
                        serde_json::to_string(&last.item)?
                    )?;
                }
                _ => break,
            }
            out.flush()?;
        }
        sim.shutdown().await;
        Ok(true)
    })
}

struct SimProcess {
    child: Child,
    stdin: ChildStdin,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl SimProcess {
    fn start(size_mib: u64) -> Res<(Self, String, String, String, String)> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--serve-sim", "--size-mib", &size_mib.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().ok_or("child stdin")?;
        let stdout = child.stdout.take().ok_or("child stdout")?;
        let mut p = Self {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        };
        let base = p.line()?;
        let bot = p.line()?;
        let mut b = base.split(' ').skip(1).map(str::to_owned);
        let mut t = bot.split(' ').skip(1).map(str::to_owned);
        let (Some(base), Some(cdn), Some(id), Some(token)) =
            (b.next(), b.next(), t.next(), t.next())
        else {
            return Err("the emulator did not start".into());
        };
        Ok((p, base, cdn, id, token))
    }

    fn line(&mut self) -> Res<String> {
        Ok(self.lines.next().ok_or("the emulator exited")??)
    }

    /// Sends a command and returns the answer line (blocking: call from a blocking context).
    fn ask(&mut self, cmd: &str) -> Res<String> {
        writeln!(self.stdin, "{cmd}")?;
        self.stdin.flush()?;
        self.line()
    }

    fn stop(mut self) {
        let _ = writeln!(self.stdin, "quit");
        drop(self.stdin);
        let _ = self.child.wait();
    }
}

// ----------------------------------------------------------------------- measurement

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Samples VmRSS on a thread between `start` and `stop`, and resets the kernel's peak.
struct PeakMeter {
    max: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    hwm_reset: bool,
}

impl PeakMeter {
    fn start() -> Self {
        // "5" resets VmHWM to the current RSS (Linux 4.0+).
        let hwm_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let max = Arc::new(AtomicU64::new(status_kib("VmRSS:")));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (max.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                m.fetch_max(status_kib("VmRSS:"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Self {
            max,
            stop,
            thread: Some(thread),
            hwm_reset,
        }
    }

    /// The phase's peak in KiB: the larger of the samples and VmHWM (if it was reset).
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let sampled = self.max.load(Ordering::Relaxed);
        if self.hwm_reset {
            sampled.max(status_kib("VmHWM:"))
        } else {
            sampled
        }
    }
}

struct Row {
    what: &'static str,
    secs: f64,
    peak_kib: u64,
    ok: bool,
    note: String,
}

fn target_dir() -> PathBuf {
    // target/release/media_rss -> target/
    std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"))
}

fn measure(size: u64, keep: bool) -> Res<bool> {
    let dir = target_dir().join("media-rss");
    std::fs::create_dir_all(&dir)?;
    let source = dir.join("upload.bin");
    let back = dir.join("upload.back");
    let inbound = dir.join("inbound.bin");
    let size_mib = size >> 20;
    eprintln!(
        "writing {size_mib} MiB of noise to {} ...",
        source.display()
    );
    let source_md5 = write_noise(&source, size, 1)?;

    let (sim, base, cdn, bot_id, token) = SimProcess::start(size_mib)?;
    let rt = runtime()?;
    let result = rt.block_on(run_phases(
        sim,
        &base,
        &cdn,
        &bot_id,
        &token,
        &source,
        &source_md5,
        &back,
        &inbound,
        size,
    ));
    if !keep {
        for p in [&source, &back, &inbound] {
            let _ = std::fs::remove_file(p);
        }
    }
    let (rows, baseline_kib) = result?;

    let mb = size as f64 / 1e6;
    println!();
    println!(
        "media through ilink-sim (child process) on loopback, {size_mib} MiB, bot process RSS (baseline before the transfers: {:.1} MiB)",
        baseline_kib as f64 / 1024.0
    );
    println!(
        "{:<28} {:>10} {:>12} {:>14}  note",
        "phase", "seconds", "MB/s", "peak RSS"
    );
    let mut all_ok = true;
    for r in &rows {
        let under = r.peak_kib < RSS_LIMIT_KIB;
        all_ok &= under && r.ok;
        println!(
            "{:<28} {:>10.2} {:>12.0} {:>10.1} MiB  {}{}{}",
            r.what,
            r.secs,
            mb / r.secs,
            r.peak_kib as f64 / 1024.0,
            if under { "" } else { "OVER 64 MiB; " },
            if r.ok { "" } else { "DID NOT ROUND-TRIP; " },
            r.note
        );
    }
    println!(
        "{}",
        if all_ok {
            "peak RSS under 64 MiB in every phase; every transfer round-tripped"
        } else {
            "FAILED"
        }
    );
    Ok(all_ok)
}

#[allow(clippy::too_many_arguments)]
async fn run_phases(
    mut sim: SimProcess,
    base: &str,
    cdn: &str,
    bot_id: &str,
    token: &str,
    source: &Path,
    source_md5: &str,
    back: &Path,
    inbound: &Path,
    size: u64,
) -> Res<(Vec<Row>, u64)> {
    let mut config = ClientConfig::for_server(base)
        .with_delays(Delays::fast())
        .with_cdn_base_url(cdn);
    config.max_media_bytes = size + (1 << 20);
    let client = Client::new(config, MemoryStore::new())?;
    let account = client
        .add_account(Credentials {
            account_id: bot_id.to_owned(),
            token: Secret::new(token.to_owned()),
            base_url: Some(base.to_owned()),
            user_id: None,
            saved_at_ms: 1,
        })
        .await?;

    // Inbound messages (their media items) come through a channel from the update stream.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<MessageItem>>();
    let mut updates = account.updates().await?;
    let poller = tokio::spawn(async move {
        while let Some(update) = updates.next().await {
            if let Update::Message(m) = update
                && tx.send(m.media_item().cloned()).is_err()
            {
                break;
            }
        }
    });
    let ask = |sim: SimProcess, cmd: String| {
        tokio::task::spawn_blocking(move || {
            let mut sim = sim;
            let answer = sim.ask(&cmd);
            (sim, answer)
        })
    };
    let recv = async |rx: &mut tokio::sync::mpsc::UnboundedReceiver<Option<MessageItem>>| {
        tokio::time::timeout(Duration::from_secs(120), rx.recv())
            .await
            .ok()
            .flatten()
            .ok_or("no message from the emulated user")
    };

    // The user writes first: the bot needs a context_token to send.
    let (s, a) = ask(sim, "hello".to_owned()).await?;
    sim = s;
    a?;
    recv(&mut rx).await?;
    let baseline = status_kib("VmRSS:");
    let mut rows = Vec::new();

    // 0. For reference: the MD5 pass alone (what send_file does first, reading the file once).
    let meter = PeakMeter::start();
    let t0 = Instant::now();
    let prepared = PreparedUpload::prepare(MediaSource::file(source), UploadMediaType::File).await;
    let secs = t0.elapsed().as_secs_f64();
    let peak = meter.finish();
    rows.push(Row {
        what: "MD5 pass alone (prepare)",
        secs,
        peak_kib: peak,
        ok: prepared.is_ok(),
        note: "PreparedUpload::prepare: read + MD5; part of the upload below".to_owned(),
    });
    drop(prepared);

    // 1. Upload and send.
    eprintln!("uploading ...");
    let meter = PeakMeter::start();
    let t0 = Instant::now();
    let sent = account.send_file(USER, source, Some("upload.bin")).await;
    let secs = t0.elapsed().as_secs_f64();
    let peak = meter.finish();
    let (s, a) = ask(sim, "delivered".to_owned()).await?;
    sim = s;
    let answer = a?;
    let mut parts = answer.splitn(3, ' ').skip(1);
    let dropped: usize = parts
        .next()
        .and_then(|d| d.parse().ok())
        .unwrap_or(usize::MAX);
    let item: MessageItem = serde_json::from_str(parts.next().ok_or("no item")?)?;
    rows.push(Row {
        what: "upload (send_file)",
        secs,
        peak_kib: peak,
        ok: sent.is_ok() && dropped == 0,
        note: format!(
            "{}: MD5 pass + encrypt + POST + emulator check + sendmessage",
            match &sent {
                Ok(_) => "delivered".to_owned(),
                Err(e) => format!("error {e}"),
            }
        ),
    });

    // 2. Download what was sent.
    eprintln!("downloading the upload ...");
    let meter = PeakMeter::start();
    let t0 = Instant::now();
    let got = account.download_to_file(&item, back).await;
    let secs = t0.elapsed().as_secs_f64();
    let peak = meter.finish();
    let (len, md5) = md5_of_file(back)?;
    rows.push(Row {
        what: "download own upload (file)",
        secs,
        peak_kib: peak,
        ok: got.is_ok() && len == size && md5 == source_md5,
        note: format!(
            "download_to_file: GET + decrypt + write; {}",
            match got {
                Ok(_) if md5 == source_md5 => "MD5 matches the source".to_owned(),
                Ok(_) => "MD5 differs".to_owned(),
                Err(e) => format!("error {e}"),
            }
        ),
    });
    let _ = std::fs::remove_file(back);

    // 3. Download a file the user sent.
    eprintln!("the emulated user sends a file ...");
    let (s, a) = ask(sim, "inbound 2".to_owned()).await?;
    sim = s;
    let answer = a?;
    let inbound_md5 = answer.split(' ').nth(1).ok_or("no MD5")?.to_owned();
    let item = recv(&mut rx).await?.ok_or("the message has no media")?;
    eprintln!("downloading it ...");
    let meter = PeakMeter::start();
    let t0 = Instant::now();
    let got = account.download_to_file(&item, inbound).await;
    let secs = t0.elapsed().as_secs_f64();
    let peak = meter.finish();
    let (len, md5) = md5_of_file(inbound)?;
    rows.push(Row {
        what: "download inbound (file)",
        secs,
        peak_kib: peak,
        ok: got.is_ok() && len == size && md5 == inbound_md5,
        note: format!(
            "download_to_file of the user's file; {}",
            match got {
                Ok(_) if md5 == inbound_md5 => "MD5 matches what the user sent".to_owned(),
                Ok(_) => "MD5 differs".to_owned(),
                Err(e) => format!("error {e}"),
            }
        ),
    });

    client.shutdown();
    poller.abort();
    tokio::task::spawn_blocking(move || sim.stop()).await?;
    Ok((rows, baseline))
}
