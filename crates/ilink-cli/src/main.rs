#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod commands;
mod demo;
mod error;
mod net;
mod offline;
mod progress;
mod replies;
mod simcmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::error::{CliError, Exit};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure (network, I/O, bad data, a demo check failed)
  2  usage error (bad arguments)
  3  login needed (no stored account, token stale or expired, QR login failed)
  4  not delivered (throttled ret -2, no context token for the user, refused)
  5  queued: part of a text waits until the user writes again (see `ilink queue`)

Logs: set RUST_LOG (e.g. RUST_LOG=ilink_client=debug).";

/// ilink: WeChat iLink bots from the command line.
#[derive(Debug, Parser)]
#[command(name = "ilink", version, about, after_help = EXIT_CODES)]
struct Cli {
    #[command(flatten)]
    net: NetArgs,
    #[command(subcommand)]
    command: Command,
}

/// Where the server, the CDN and the local state are.
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    /// Bot API base URL (default: the account's saved URL, else https://ilinkai.weixin.qq.com).
    /// Also the QR login host.
    #[arg(long, global = true, env = "ILINK_BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,
    /// CDN base URL for media (default: https://novac2c.cdn.weixin.qq.com/c2c).
    #[arg(long, global = true, env = "ILINK_CDN_BASE_URL", value_name = "URL")]
    pub cdn_base_url: Option<String>,
    /// Directory with credentials, cursors and context tokens (default: ilink's state dir).
    #[arg(long, global = true, env = "ILINK_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Which stored bot account to use (`…@im.bot`) when there are several.
    #[arg(long, global = true, env = "ILINK_ACCOUNT", value_name = "ID")]
    pub account: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Offline demo: ilink-sim in-process, a real QR login, a bot answering text, an image,
    /// a file and a voice message, and a checked summary.
    Demo,
    /// Log a bot in with a QR code drawn in the terminal; saves the credentials (mode 0600).
    Login,
    /// Run an echo bot: text is echoed, media and voice are sent back.
    Echo {
        /// Stop after handling this many messages.
        #[arg(long, value_name = "N")]
        max: Option<u64>,
        /// Prefix of echoed text.
        #[arg(long, default_value = "echo: ")]
        prefix: String,
        #[command(flatten)]
        policy: replies::PolicyArgs,
    },
    /// Print incoming messages as they arrive.
    Tail {
        /// One JSON object per line (its `items` can be passed to `ilink download`).
        #[arg(long)]
        json: bool,
        /// Stop after this many messages.
        #[arg(long, value_name = "N")]
        max: Option<u64>,
    },
    /// Send a message to a user who has written to the bot.
    Send(commands::SendArgs),
    /// Inspect, flush or clear the messages waiting for a user's next message.
    #[command(subcommand)]
    Queue(replies::QueueCommand),
    /// Download and decrypt the media of a received message.
    Download(commands::DownloadArgs),
    /// Decrypt a file downloaded from the CDN (AES-128-ECB, PKCS#7).
    Decrypt {
        /// The key: 32 hex digits, or base64 of the raw 16 bytes or of the hex digits.
        #[arg(long, value_name = "KEY")]
        key: String,
        /// The encrypted file.
        input: PathBuf,
        /// Where to write the plaintext.
        output: PathBuf,
    },
    /// Convert voice: SILK to WAV, or any audio file to SILK.
    #[command(subcommand)]
    Silk(offline::SilkCommand),
    /// Run the emulator (ilink-sim) on a port until Ctrl-C.
    Sim(simcmd::SimArgs),
    /// Check the saved account: token, server, clock, and what is sent.
    Doctor,
}

fn init_logs() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let net = cli.net;
    match cli.command {
        Command::Demo => demo::run().await,
        Command::Login => commands::login(&net).await,
        Command::Echo {
            max,
            prefix,
            policy,
        } => commands::echo(&net, max, &prefix, &policy).await,
        Command::Tail { json, max } => commands::tail(&net, json, max).await,
        Command::Send(args) => commands::send(&net, args).await,
        Command::Queue(cmd) => replies::queue(&net, cmd).await,
        Command::Download(args) => commands::download(&net, args).await,
        Command::Decrypt { key, input, output } => offline::decrypt(&key, &input, &output).await,
        Command::Silk(cmd) => offline::silk(cmd).await,
        Command::Sim(args) => simcmd::run(args).await,
        Command::Doctor => commands::doctor(&net).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ilink: cannot start the async runtime: {e}");
            return ExitCode::from(Exit::Failure as u8);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ilink: {e}");
            ExitCode::from(e.exit as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn send_needs_exactly_one_content() {
        let ok = Cli::try_parse_from(["ilink", "send", "--to", "u@im.wechat", "--text", "hi"]);
        assert!(ok.is_ok());
        let none = Cli::try_parse_from(["ilink", "send", "--to", "u@im.wechat"]);
        assert!(none.is_err());
        let two = Cli::try_parse_from([
            "ilink", "send", "--to", "u", "--text", "a", "--image", "b.png",
        ]);
        assert!(two.is_err());
    }
}
