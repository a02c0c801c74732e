//! `ilink sim`: the emulator on a port.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Args;
use ilink_sim::{Sim, SimConfig};

use crate::error::{CliError, CliResult};

/// Arguments of `ilink sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// The port to listen on (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The address to listen on. Keep loopback unless you know why not.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
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
    /// Print the status as one JSON line: {"base_url", "cdn_base_url", "admin_url"}.
    #[arg(long)]
    json: bool,
    /// Text cap in UTF-16 code units: longer texts are delivered cut with success, as the live server does (0: off).
    #[arg(long, default_value_t = ilink_sim::DEFAULT_TEXT_CAP, value_name = "UNITS")]
    text_cap: usize,
}

/// `ilink sim`: prints the URLs, then serves until Ctrl-C.
pub async fn run(args: SimArgs) -> CliResult {
    let hold = Duration::from_millis(args.hold_ms.max(1));
    let config = SimConfig {
        longpolling_timeout: hold,
        longpoll_margin: Duration::from_millis(100).min(hold / 4),
        seed: args.seed,
        upload_requires_context_token: (!args.upload_without_token)
            .then_some(ilink_sim::UploadGrantRefusal::Ret2),
        text_cap: (args.text_cap > 0).then_some(args.text_cap),
        ..SimConfig::default()
    };
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
    let mut out = std::io::stdout().lock();
    if args.json {
        let line = serde_json::json!({
            "status": "running",
            "base_url": base,
            "cdn_base_url": cdn,
            "admin_url": format!("http://{}/_sim/", sim.addr()),
        });
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        drop(out);
        crate::net::wait_for_stop_signal(signals).await;
        sim.shutdown().await;
        return Ok(());
    }
    let _ = writeln!(out, "ilink-sim is running (Ctrl-C stops it)");
    let _ = writeln!(out, "base URL:  {base}");
    let _ = writeln!(out, "CDN URL:   {cdn}");
    let _ = writeln!(out, "admin API: http://{}/_sim/", sim.addr());
    let _ = writeln!(out, "Point ilink at it:");
    let _ = writeln!(
        out,
        "  export ILINK_BASE_URL={base} ILINK_CDN_BASE_URL={cdn}"
    );
    let _ = writeln!(
        out,
        "  ilink login   # the emulated phone scans and confirms by itself"
    );
    let _ = out.flush();
    drop(out);
    crate::net::wait_for_stop_signal(signals).await;
    sim.shutdown().await;
    Ok(())
}
