//! `ilink sim`: the emulator on a port, with every server policy switchable.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::{Args, ValueEnum};
use ilink_sim::{
    AccessToken, BurstPolicy, BurstScope, QrStep, Retention, Sim, SimConfig, VoiceCodec,
    VoiceCodecRef,
};

use crate::error::{CliError, CliResult};

/// A policy value on the command line: `off`, or a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting<T> {
    /// The rule is switched off.
    Off,
    /// The rule with this value.
    On(T),
}

impl<T> Setting<T> {
    fn into_option(self) -> Option<T> {
        match self {
            Self::Off => None,
            Self::On(v) => Some(v),
        }
    }
}

fn off_or<T>(s: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<Setting<T>, String> {
    if s.eq_ignore_ascii_case("off") || s.eq_ignore_ascii_case("none") {
        Ok(Setting::Off)
    } else {
        parse(s).map(Setting::On)
    }
}

/// `500ms`, `10s`, `5m`, `24h`, `30d`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 500ms, 10s, 5m, 24h or 30d"))?;
    let ms = match unit.trim() {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" | "min" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        "" => return Err(format!("{s:?} needs a unit: ms, s, m, h or d")),
        u => return Err(format!("unknown unit {u:?} in {s:?}: use ms, s, m, h or d")),
    }
    .ok_or_else(|| format!("{s:?} is too long"))?;
    Ok(Duration::from_millis(ms))
}

fn opt_duration(s: &str) -> Result<Setting<Duration>, String> {
    off_or(s, parse_duration)
}

fn opt_count(s: &str) -> Result<Setting<u32>, String> {
    off_or(s, |s| {
        s.parse()
            .map_err(|_| format!("{s:?} is not a whole number or `off`"))
    })
}

/// `N/DURATION`, e.g. `30/10s`.
fn opt_burst(s: &str) -> Result<Setting<BurstPolicy>, String> {
    off_or(s, |s| {
        let (n, d) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not SENDS/WINDOW like 30/10s, or `off`"))?;
        let max_sends = n
            .trim()
            .parse()
            .map_err(|_| format!("{n:?} is not a whole number"))?;
        Ok(BurstPolicy {
            max_sends,
            window: parse_duration(d)?,
        })
    })
}

/// Bytes with an optional unit: `1048576`, `512KiB`, `110MiB`, `2GiB` (also KB/MB/GB = 1000^n).
fn parse_bytes(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 1048576, 110MiB or 2GiB"))?;
    let mul: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        u => return Err(format!("unknown unit {u:?} in {s:?}: use KiB, MiB or GiB")),
    };
    n.checked_mul(mul)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Which messages the burst throttle counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BurstScopeArg {
    /// Image, voice, file and video only (what users reported).
    Media,
    /// Every message, text included (stricter than any report).
    All,
}

/// Arguments of `ilink sim`.
///
/// Provenance of each policy: [wire] seen in the official client's traffic, [obs] reported by
/// users (docs/protocol.md §16, §19), or a guess of this emulator. Every one can be changed or
/// switched off.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// The port to listen on (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The address to listen on. Keep loopback unless you know why not: on any other address
    /// the web page and the admin API require an access token (--access-token, or a random one
    /// printed at start).
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// The access token the web page and admin API require when not on loopback.
    #[arg(
        long,
        env = "ILINK_SIM_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    access_token: Option<String>,
    /// Print the web page's URL first (the page plays the phone: QR logins, chats, faults).
    #[arg(long)]
    open: bool,
    /// QR logins wait for the web page (scan, verify code, confirm, expire) instead of the
    /// emulated phone scanning and confirming by itself.
    #[arg(long)]
    manual_login: bool,
    /// How long an empty getupdates long-poll is held, in milliseconds.
    #[arg(long, default_value_t = 35_000, value_name = "MS")]
    hold_ms: u64,
    /// Seed for every random value (ids, keys, tokens), for reproducible runs.
    #[arg(long)]
    seed: Option<u64>,
    /// Grant uploads without the chat's context_token (the live server refuses them with
    /// ret -2 since about July 2026, which the emulator does by default).
    #[arg(long)]
    upload_without_token: bool,
    /// Print the status as one JSON line: {"status", "base_url", "cdn_base_url", "admin_url",
    /// "page_url"}.
    #[arg(long)]
    json: bool,
    /// Text cap in UTF-16 code units: longer texts are delivered cut with success, as the live
    /// server does (0: off). [obs] about 2000 characters.
    #[arg(long, default_value_t = ilink_sim::DEFAULT_TEXT_CAP, value_name = "UNITS")]
    text_cap: usize,
    /// Switch off every rate and time limit (reply limit and window, burst throttle, token and
    /// context-token lifetimes). Checks of what a message must contain stay.
    #[arg(long)]
    no_limits: bool,
    /// Replies per inbound message before `ret:-2`, or `off`. [obs] about 10 (default 10).
    #[arg(long, value_name = "N|off", value_parser = opt_count)]
    reply_limit: Option<Setting<u32>>,
    /// How long after the user's last message the bot may reply, or `off`. [obs] 24 h
    /// (default 24h).
    #[arg(long, value_name = "DURATION|off", value_parser = opt_duration)]
    reply_window: Option<Setting<Duration>>,
    /// Burst throttle as SENDS/WINDOW, or `off`. [obs] media bursts are throttled; the
    /// numbers are a guess (default 30/10s).
    #[arg(long, value_name = "N/DURATION|off", value_parser = opt_burst)]
    burst: Option<Setting<BurstPolicy>>,
    /// Which messages the burst throttle counts (default media, the only kind reported).
    #[arg(long, value_enum, value_name = "SCOPE")]
    burst_scope: Option<BurstScopeArg>,
    /// Age after which a bot token goes stale (-14), or `off`. A guess (default 30d).
    #[arg(long, value_name = "DURATION|off", value_parser = opt_duration)]
    token_lifetime: Option<Setting<Duration>>,
    /// Age after which a context_token answers "prepare failed", or `off`. [obs] reported
    /// after about 2 min, unconfirmed (default off).
    #[arg(long, value_name = "DURATION|off", value_parser = opt_duration)]
    context_token_lifetime: Option<Setting<Duration>>,
    /// Let sendmessage through without a context_token ([obs] the live server answers `ret:-2`).
    #[arg(long)]
    no_context_token_required: bool,
    /// Let a user be bound to several bots at once (a guess modelled on `binded_redirect`).
    #[arg(long)]
    allow_many_bots_per_user: bool,
    /// Store CDN uploads without checking them against getuploadurl (size, key, MD5).
    #[arg(long)]
    no_upload_checks: bool,
    /// Give upload grants for any to_user_id ([obs] a malformed one gets `{"ret":-1}`).
    #[arg(long)]
    no_recipient_check: bool,
    /// Largest CDN upload accepted, e.g. 300MiB or 2GiB (default 110MiB). The emulator holds
    /// every upload in memory.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    max_upload_bytes: Option<usize>,
    /// Largest request body on the bot and admin API (default 110MiB).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    max_body_bytes: Option<usize>,
    /// Records kept of each kind (inbound, delivered, dropped, requests, ...; default 20000);
    /// older ones are dropped and counted (GET /_sim/memory).
    #[arg(long, value_name = "N")]
    max_records: Option<usize>,
    /// Bytes the emulated CDN keeps before dropping its oldest objects (default 1GiB).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    max_cdn_bytes: Option<usize>,
}

impl SimArgs {
    /// The configuration these flags describe.
    fn config(&self) -> SimConfig {
        let hold = Duration::from_millis(self.hold_ms.max(1));
        let mut c = SimConfig {
            longpolling_timeout: hold,
            longpoll_margin: Duration::from_millis(100).min(hold / 4),
            seed: self.seed,
            voice_codec: Some(VoiceCodecRef::new(SilkCodec)),
            ..SimConfig::default()
        };
        if self.manual_login {
            c.default_qr_script = vec![QrStep::Wait];
        }
        if self.no_limits {
            c = c.without_limits();
        }
        if let Some(v) = self.reply_limit {
            c.reply_limit = v.into_option();
        }
        if let Some(v) = self.reply_window {
            c.reply_window = v.into_option();
        }
        if let Some(v) = self.burst {
            c.burst = v.into_option();
        }
        if let Some(s) = self.burst_scope {
            c.burst_scope = match s {
                BurstScopeArg::Media => BurstScope::MediaOnly,
                BurstScopeArg::All => BurstScope::AllMessages,
            };
        }
        if let Some(v) = self.token_lifetime {
            c.token_lifetime = v.into_option();
        }
        if let Some(v) = self.context_token_lifetime {
            c.context_token_lifetime = v.into_option();
        }
        c.require_context_token = !self.no_context_token_required;
        c.one_bot_per_user = !self.allow_many_bots_per_user;
        c.upload_checks = !self.no_upload_checks;
        c.check_upload_recipient = !self.no_recipient_check;
        if let Some(b) = self.max_upload_bytes {
            c.max_upload_bytes = b;
        }
        if let Some(b) = self.max_body_bytes {
            c.max_body_bytes = b;
        }
        if let Some(n) = self.max_records {
            c.retention = Retention::with_record_count(c.retention, n.max(1));
            c.max_logged_requests = n.max(1);
        }
        if let Some(b) = self.max_cdn_bytes {
            c.retention.cdn.bytes = b;
        }
        c.access_token = self.access_token.clone().map(AccessToken::new);
        c.upload_requires_context_token =
            (!self.upload_without_token).then_some(ilink_sim::UploadGrantRefusal::Ret2);
        c.text_cap = (self.text_cap > 0).then_some(self.text_cap);
        c
    }
}

/// The web page's voice: ilink-silk encodes what the browser recorded and decodes what the
/// bot sent.
struct SilkCodec;

impl VoiceCodec for SilkCodec {
    fn encode(&self, audio: &[u8]) -> Result<(Vec<u8>, u64), String> {
        let v = ilink_silk::audio_to_voice(audio, ilink_silk::EncodeOptions::default())
            .map_err(|e| e.to_string())?;
        Ok((v.silk, v.meta.playtime_ms))
    }

    fn decode_to_wav(&self, silk: &[u8]) -> Result<Vec<u8>, String> {
        ilink_silk::decode_to_wav(silk).map_err(|e| e.to_string())
    }
}

/// `ilink sim`: prints the URLs, then serves until Ctrl-C.
pub async fn run(args: SimArgs) -> CliResult {
    let config = args.config();
    // Listening before the URLs are printed: a stop right after them is graceful too.
    let signals = crate::net::StopSignals::new();
    let addr = SocketAddr::new(args.host, args.port);
    let sim = Sim::start_on(config, addr).await.map_err(|e| {
        CliError::failure(format!(
            "cannot start the emulator: {}",
            crate::error::chain(&e)
        ))
        .hint("choose another --port")
    })?;
    let base = sim.base_url();
    let cdn = sim.cdn_base_url();
    let page = sim.page_url();
    let mut out = std::io::stdout().lock();
    if args.json {
        let line = serde_json::json!({
            "status": "running",
            "base_url": base,
            "cdn_base_url": cdn,
            "admin_url": format!("http://{}/_sim/", sim.addr()),
            "page_url": page,
        });
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        drop(out);
        crate::net::wait_for_stop_signal(signals).await;
        sim.shutdown().await;
        return Ok(());
    }
    if args.open {
        let _ = writeln!(out, "{page}");
    }
    let _ = writeln!(out, "ilink-sim is running (Ctrl-C stops it)");
    let _ = writeln!(out, "web page:  {page}");
    let _ = writeln!(out, "base URL:  {base}");
    let _ = writeln!(out, "CDN URL:   {cdn}");
    let _ = writeln!(out, "admin API: http://{}/_sim/", sim.addr());
    let c = sim.config();
    let _ = writeln!(
        out,
        "policies:  reply limit {}, reply window {}, burst {}, token lifetime {}",
        c.reply_limit.map_or("off".to_owned(), |n| n.to_string()),
        c.reply_window
            .map_or("off".to_owned(), |d| format!("{}s", d.as_secs())),
        c.burst.map_or("off".to_owned(), |b| format!(
            "{}/{}s ({})",
            b.max_sends,
            b.window.as_secs(),
            match c.burst_scope {
                BurstScope::MediaOnly => "media",
                _ => "all",
            }
        )),
        c.token_lifetime
            .map_or("off".to_owned(), |d| format!("{}s", d.as_secs())),
    );
    let _ = writeln!(out, "Point ilink at it:");
    let _ = writeln!(
        out,
        "  export ILINK_BASE_URL={base} ILINK_CDN_BASE_URL={cdn}"
    );
    let _ = writeln!(
        out,
        "  ilink login   # scan and confirm on the web page, or let the emulated phone do it"
    );
    let _ = out.flush();
    drop(out);
    crate::net::wait_for_stop_signal(signals).await;
    sim.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_sizes_and_off() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("10y").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
        assert_eq!(parse_bytes("110MiB"), Ok(110 << 20));
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert!(parse_bytes("12XB").is_err());
        assert_eq!(opt_count("off"), Ok(Setting::Off));
        assert_eq!(opt_count("3"), Ok(Setting::On(3)));
        assert_eq!(
            opt_burst("5/2s"),
            Ok(Setting::On(BurstPolicy {
                max_sends: 5,
                window: Duration::from_secs(2)
            }))
        );
        assert!(opt_burst("5").is_err());
    }
}

#[cfg(test)]
mod flag_tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn config(args: &[&str]) -> SimConfig {
        Cmd::try_parse_from([&["sim"], args].concat())
            .unwrap()
            .sim
            .config()
    }

    #[test]
    fn defaults_are_the_library_defaults_with_a_codec() {
        let c = config(&[]);
        let d = SimConfig::default();
        assert_eq!(c.reply_limit, d.reply_limit);
        assert_eq!(c.reply_window, d.reply_window);
        assert_eq!(c.burst, d.burst);
        assert_eq!(c.burst_scope, BurstScope::MediaOnly);
        assert_eq!(c.max_upload_bytes, d.max_upload_bytes);
        assert!(c.upload_checks && c.check_upload_recipient && c.require_context_token);
        assert!(c.voice_codec.is_some());
        assert_eq!(c.default_qr_script, d.default_qr_script);
    }

    #[test]
    fn every_policy_has_a_flag() {
        let c = config(&[
            "--reply-limit",
            "3",
            "--reply-window",
            "2h",
            "--burst",
            "5/1s",
            "--burst-scope",
            "all",
            "--token-lifetime",
            "off",
            "--context-token-lifetime",
            "90s",
            "--no-context-token-required",
            "--allow-many-bots-per-user",
            "--no-upload-checks",
            "--no-recipient-check",
            "--max-upload-bytes",
            "300MiB",
            "--max-body-bytes",
            "2MiB",
            "--max-records",
            "50",
            "--max-cdn-bytes",
            "64MiB",
            "--manual-login",
            "--access-token",
            "tok",
        ]);
        assert_eq!(c.reply_limit, Some(3));
        assert_eq!(c.reply_window, Some(Duration::from_secs(7200)));
        assert_eq!(
            c.burst,
            Some(BurstPolicy {
                max_sends: 5,
                window: Duration::from_secs(1)
            })
        );
        assert_eq!(c.burst_scope, BurstScope::AllMessages);
        assert_eq!(c.token_lifetime, None);
        assert_eq!(c.context_token_lifetime, Some(Duration::from_secs(90)));
        assert!(!c.require_context_token && !c.one_bot_per_user);
        assert!(!c.upload_checks && !c.check_upload_recipient);
        assert_eq!(c.max_upload_bytes, 300 << 20);
        assert_eq!(c.max_body_bytes, 2 << 20);
        assert_eq!(c.retention.delivered.count, 50);
        assert_eq!(c.max_logged_requests, 50);
        assert_eq!(c.retention.cdn.bytes, 64 << 20);
        assert_eq!(c.default_qr_script, vec![QrStep::Wait]);
        assert_eq!(c.access_token.unwrap().expose(), "tok");
    }

    #[test]
    fn no_limits_lifts_every_rate_and_time_limit_and_flags_still_win() {
        let c = config(&["--no-limits"]);
        assert_eq!(
            (
                c.reply_limit,
                c.reply_window,
                c.burst,
                c.token_lifetime,
                c.context_token_lifetime
            ),
            (None, None, None, None, None)
        );
        let c = config(&["--no-limits", "--reply-limit", "2"]);
        assert_eq!(c.reply_limit, Some(2));
        assert!(Cmd::try_parse_from(["sim", "--burst", "5"]).is_err());
        assert!(Cmd::try_parse_from(["sim", "--reply-window", "3"]).is_err());
    }
}
