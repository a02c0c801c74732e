#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

use std::error::Error;
use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use ilink_client::{
    Account, Client, ClientConfig, Delays, LoginOutcome, LoginPresenter, QrCode, TerminalPresenter,
};
use ilink_sim::{Delivered, QrStep, Sim, SimConfig};

/// The error type of the examples.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// How long the scripted conversations wait for a reply.
pub const REPLY_WAIT: Duration = Duration::from_secs(15);

/// Whether the example was started with `--sim`.
pub fn wants_sim() -> bool {
    std::env::args().skip(1).any(|a| a == "--sim")
}

/// The `main` of every example: runs `offline` (against its own emulator) when started with
/// `--sim`, `online` (real WeChat) otherwise, and turns the outcome into an exit code, printing
/// the error prefixed with the example's `name`. Only the chosen future is ever polled.
pub async fn run_example(
    name: &str,
    offline: impl Future<Output = Result<(), BoxError>>,
    online: impl Future<Output = Result<(), BoxError>>,
) -> ExitCode {
    let result = if wants_sim() {
        offline.await
    } else {
        online.await
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Starts an emulator on loopback with short long-polls.
pub async fn start_sim() -> Result<Sim, BoxError> {
    Ok(Sim::start(SimConfig::for_tests(Duration::from_millis(500))).await?)
}

/// A client for `sim`, with state in memory and fast retry delays.
pub fn sim_client(sim: &Sim) -> Result<Client, BoxError> {
    let config = ClientConfig::for_server(&sim.base_url())
        .with_cdn_base_url(sim.cdn_base_url())
        .with_delays(Delays::fast());
    Ok(Client::builder().config(config).in_memory().build()?)
}

/// Shows nothing: the emulated phone scans the code by itself.
struct Quiet;

impl LoginPresenter for Quiet {
    fn show_qr(&self, _qr: &QrCode) {}
}

/// A QR login on `sim`, scanned and confirmed by `user`'s emulated phone.
pub async fn sim_login(client: &Client, sim: &Sim, user: &str) -> Result<Account, BoxError> {
    sim.qr().script(vec![
        QrStep::Scan,
        QrStep::Confirm {
            user_id: user.to_owned(),
        },
    ]);
    match client.login(&Quiet).await? {
        LoginOutcome::Confirmed(account) => Ok(account),
        _ => Err("the emulator did not confirm the login".into()),
    }
}

/// A client for the real service (or `ilink sim`, via `ILINK_BASE_URL` and
/// `ILINK_CDN_BASE_URL`), with state in `ILINK_STATE_DIR` or the default directory.
pub fn real_client() -> Result<Client, BoxError> {
    let mut config = match std::env::var("ILINK_BASE_URL") {
        Ok(base) if !base.is_empty() => ClientConfig::for_server(&base),
        _ => ClientConfig::default(),
    };
    if let Ok(cdn) = std::env::var("ILINK_CDN_BASE_URL")
        && !cdn.is_empty()
    {
        config = config.with_cdn_base_url(cdn);
    }
    Ok(Client::builder()
        .config(config)
        .state_dir(ilink_client::FileStore::default_dir())
        .build()?)
}

/// The first stored account of `client`, or a new one from a QR login in the terminal.
pub async fn stored_or_login(client: &Client) -> Result<Account, BoxError> {
    if let Some(account) = client.accounts().await?.into_iter().next() {
        return Ok(account);
    }
    match client.login(&TerminalPresenter::new()).await? {
        LoginOutcome::Confirmed(account) => Ok(account),
        _ => Err("this bot is already connected elsewhere; log in again".into()),
    }
}

/// Waits until `sim` delivered `count` messages to `user` in all, and returns them.
pub async fn replies(sim: &Sim, user: &str, count: usize) -> Result<Vec<Delivered>, BoxError> {
    Ok(sim.wait_for_delivered(user, count, REPLY_WAIT).await?)
}

/// Fails with `what` unless `ok`.
pub fn ensure(ok: bool, what: &str) -> Result<(), BoxError> {
    if ok {
        println!("ok: {what}");
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}

/// `ms` milliseconds of a tone at `hz` Hz, 24 kHz mono, with soft edges.
pub fn tone(hz: f32, ms: u32) -> Vec<i16> {
    let n = 24 * ms as usize;
    (0..n)
        .map(|i| {
            let t = i as f32 / 24_000.0;
            let edge = ((i.min(n - i) as f32) / 480.0).min(1.0);
            ((2.0 * std::f32::consts::PI * hz * t).sin() * 7000.0 * edge) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tones_have_the_asked_length_and_soft_edges() {
        let t = tone(440.0, 100);
        assert_eq!(t.len(), 2400);
        assert_eq!(t[0], 0);
        assert!(t.iter().any(|&s| s > 5000));
    }
}
