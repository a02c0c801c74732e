#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod commands;
mod demo;
mod error;
mod exporter;
mod fleetcmd;
mod inbound;
mod net;
mod offline;
mod outbound;
mod progress;
mod replies;
mod simcmd;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use crate::error::{CliError, Exit};

const EXIT_CODES: &str = "\
Exit codes (the first line of an error starts with the same words):
  0  success (also after a stop by Ctrl-C or SIGTERM)
  1  error: failure (network, I/O, bad data, a demo check failed)
  2  usage error: bad arguments
  3  login needed: no stored account, token stale or expired, QR login failed
  4  not delivered: throttled (-2), no context token for the user, refused
  5  account busy: another process consumes this account's messages
  6  queued: part of a text waits until the user writes again (see `ilink queue`)

Logs go to stderr: -v for more, -q for errors only, or RUST_LOG (e.g.
RUST_LOG=ilink_client=debug). Colour only on a terminal and never with NO_COLOR.";

/// ilink: WeChat iLink bots from the command line.
#[derive(Debug, Parser)]
#[command(name = "ilink", version, about, after_help = EXIT_CODES)]
struct Cli {
    #[command(flatten)]
    net: NetArgs,
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

/// Where the server, the CDN and the local state are. The network and state commands take
/// them after their name; before the subcommand they apply to whichever command uses them
/// (the shared settings of a wrapper or alias); the offline commands refuse them.
#[derive(Debug, Clone, Default, Args)]
#[command(
    next_help_heading = "Server and state (login, echo, tail, send, download, doctor, accounts, users, logout)"
)]
pub struct NetArgs {
    /// Bot API base URL (default: the account's saved URL, else https://ilinkai.weixin.qq.com).
    /// Also the QR login host. Given for a saved account, it is used and saved (with a notice).
    #[arg(long, env = "ILINK_BASE_URL", value_name = "URL", value_parser = net::parse_url)]
    pub base_url: Option<String>,
    /// CDN base URL for media (default: https://novac2c.cdn.weixin.qq.com/c2c).
    #[arg(long, env = "ILINK_CDN_BASE_URL", value_name = "URL", value_parser = net::parse_url)]
    pub cdn_base_url: Option<String>,
    /// Directory with credentials, cursors and context tokens (default: $XDG_STATE_HOME/ilink,
    /// else ~/.local/state/ilink).
    #[arg(long, env = "ILINK_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Where the state lives, instead of --state-dir: `file:DIR` (or a path), `memory:`, or
    /// `postgres://USER:PASSWORD@HOST:PORT/DB` (shared by a fleet of processes). Wins over
    /// --state-dir.
    #[arg(long, env = "ILINK_STORE", value_name = "URL", value_parser = fleetcmd::StoreUrlParser)]
    pub store: Option<fleetcmd::StoreUrl>,
    /// Which stored bot account to use (`…@im.bot`) when there are several. Without it, `send`
    /// uses the one holding the recipient's context token and `tail` reads all of them.
    #[arg(long, env = "ILINK_ACCOUNT", value_name = "ID")]
    pub account: Option<String>,
    /// Whether --base-url was given on the command line or in the environment (not by
    /// default).
    #[arg(skip)]
    pub base_url_given: bool,
}

/// How much is logged.
#[derive(Debug, Clone, Copy, Default, Args)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// More log lines on stderr: -v for progress, -vv for protocol detail.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,
    /// Only errors on stderr (no warnings).
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Offline demo: ilink-sim in-process, a real QR login, a bot answering text, an image,
    /// a file and a voice message, and a checked summary.
    Demo,
    /// Log a bot in with a QR code drawn in the terminal; saves the credentials (mode 0600).
    Login {
        #[command(flatten)]
        net: NetArgs,
    },
    /// List the bot accounts saved in the state directory.
    Accounts {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        net: NetArgs,
    },
    /// List the users an account can send to (those who wrote and left a context token).
    Users {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Forget a bot account: delete its saved credentials and state (refused while a
    /// process consumes its messages).
    Logout {
        #[command(flatten)]
        net: NetArgs,
    },
    /// Run an echo bot: text is echoed, media and voice are sent back. Consumes the
    /// account's messages: one consumer per account at a time.
    Echo {
        /// Stop after handling this many messages (at least 1; without it, run until stopped).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        max: Option<u64>,
        /// Prefix of echoed text.
        #[arg(long, default_value = "echo: ")]
        prefix: String,
        #[command(flatten)]
        net: NetArgs,
        #[command(flatten)]
        policy: replies::PolicyArgs,
        #[command(flatten)]
        metrics: exporter::MetricsArgs,
        #[command(flatten)]
        fleet: fleetcmd::FleetArgs,
    },
    /// Print incoming messages as they arrive (from every account when there are several and
    /// no --account). Consumes the account's messages (they count as handled once printed):
    /// one consumer per account at a time.
    Tail {
        /// One JSON object per line (its `items` can be passed to `ilink download`).
        #[arg(long)]
        json: bool,
        /// Stop after this many messages (at least 1; without it, run until stopped).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        max: Option<u64>,
        #[command(flatten)]
        net: NetArgs,
        #[command(flatten)]
        metrics: exporter::MetricsArgs,
    },
    /// Send a message to a user who has written to the bot.
    Send {
        #[command(flatten)]
        args: commands::SendArgs,
        #[command(flatten)]
        net: NetArgs,
    },
    /// A fleet of processes sharing a store's accounts: who serves which.
    #[command(subcommand)]
    Fleet(fleetcmd::FleetCommand),
    /// Inspect, flush or clear the messages waiting for a user's next message.
    #[command(subcommand)]
    Queue(replies::QueueCommand),
    /// Download and decrypt the media of a received message.
    Download {
        #[command(flatten)]
        args: inbound::DownloadArgs,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Decrypt a file downloaded from the CDN (AES-128-ECB, PKCS#7).
    Decrypt(inbound::DecryptArgs),
    /// Convert voice: SILK to WAV, or any audio file to SILK.
    #[command(subcommand)]
    Silk(offline::SilkCommand),
    /// Run the emulator (ilink-sim) on a port until Ctrl-C or SIGTERM.
    Sim(simcmd::SimArgs),
    /// Check the saved account: token, server, clock, and what is sent.
    Doctor {
        /// The checks as one JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout: `ilink man > ilink.1`.
    Man,
}

/// The `ilink` command line, for completions and the man page.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Colour in logs: only on a terminal, and never when `NO_COLOR` is set to anything but the
/// empty string (no-color.org).
fn use_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

fn init_logs(log: LogArgs) {
    use tracing_subscriber::EnvFilter;
    let default = if log.quiet {
        "error"
    } else {
        match log.verbose {
            0 => "warn",
            1 => "warn,ilink_client=info,ilink_cdn=info,ilink_sim=info,ilink=info",
            _ => "debug",
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let colour = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(log.verbose > 1)
        .try_init();
}

/// The options of the network command: its own, else those before the subcommand.
fn merge(top: &NetArgs, own: &NetArgs, matches: &ArgMatches) -> NetArgs {
    let given = |m: &ArgMatches| {
        m.try_get_raw("base_url").ok().flatten().is_some()
            && matches!(
                m.value_source("base_url"),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
    };
    let sub = matches.subcommand().map(|(_, m)| m);
    NetArgs {
        base_url: own.base_url.clone().or_else(|| top.base_url.clone()),
        cdn_base_url: own
            .cdn_base_url
            .clone()
            .or_else(|| top.cdn_base_url.clone()),
        state_dir: own.state_dir.clone().or_else(|| top.state_dir.clone()),
        store: own.store.clone().or_else(|| top.store.clone()),
        account: own.account.clone().or_else(|| top.account.clone()),
        base_url_given: given(matches) || sub.is_some_and(given),
    }
}

async fn run(cli: Cli, matches: &ArgMatches) -> Result<(), CliError> {
    let top = cli.net;
    let m = |own: &NetArgs| merge(&top, own, matches);
    match cli.command {
        Command::Demo => demo::run().await,
        Command::Login { net } => commands::login(&m(&net)).await,
        Command::Accounts { json, net } => commands::accounts(&m(&net), json).await,
        Command::Users { json, net } => commands::users(&m(&net), json).await,
        Command::Logout { net } => commands::logout(&m(&net)).await,
        Command::Echo {
            max,
            prefix,
            net,
            policy,
            metrics,
            fleet,
        } => {
            let _serving = metrics.serve().await?;
            if fleet.fleet {
                fleetcmd::echo_fleet(&m(&net), max, &prefix, &policy, &fleet).await
            } else {
                commands::echo(&m(&net), max, &prefix, &policy).await
            }
        }
        Command::Fleet(cmd) => {
            let net = m(cmd.net());
            match cmd {
                fleetcmd::FleetCommand::Status { json, .. } => fleetcmd::status(&net, json).await,
            }
        }
        Command::Tail {
            json,
            max,
            net,
            metrics,
        } => {
            let _serving = metrics.serve().await?;
            inbound::tail(&m(&net), json, max).await
        }
        Command::Send { args, net } => commands::send(&m(&net), args).await,
        Command::Queue(cmd) => {
            let net = m(cmd.net());
            replies::queue(&net, cmd).await
        }
        Command::Download { args, net } => inbound::download(&m(&net), args).await,
        Command::Decrypt(args) => inbound::decrypt(args).await,
        Command::Silk(cmd) => offline::silk(cmd).await,
        Command::Sim(args) => simcmd::run(args).await,
        Command::Doctor { json, net } => commands::doctor(&m(&net), json).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut command(), "ilink", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => clap_mangen::Man::new(command())
            .render(&mut std::io::stdout())
            .map_err(|e| CliError::io("writing the man page", e)),
    }
}

/// Prints an error once: its prefix (which matches the exit code), the message, the hint.
fn report(e: &CliError) {
    let mut err = std::io::stderr().lock();
    let _ = std::io::Write::write_fmt(&mut err, format_args!("ilink: {}: {e}\n", e.exit.prefix()));
}

/// A command-line error of clap: help and version as clap prints them, usage errors with
/// the usage prefix (exit 2).
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind as K;
    if matches!(
        e.kind(),
        K::DisplayHelp | K::DisplayVersion | K::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let text = e.render().to_string();
    let text = text
        .trim_end()
        .strip_prefix("error: ")
        .unwrap_or(text.trim_end());
    eprintln!("ilink: {}: {text}", Exit::Usage.prefix());
    ExitCode::from(Exit::Usage as u8)
}

fn main() -> ExitCode {
    let matches = match command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return clap_error(e),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => return clap_error(e),
    };
    init_logs(cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            report(&CliError::io("cannot start the async runtime", e));
            return ExitCode::from(Exit::Failure as u8);
        }
    };
    match runtime.block_on(run(cli, &matches)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::from(e.exit as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn net_options_go_before_or_after_a_network_command_only() {
        assert!(Cli::try_parse_from(["ilink", "--base-url", "http://a/", "tail"]).is_ok());
        assert!(Cli::try_parse_from(["ilink", "tail", "--base-url", "http://a/"]).is_ok());
        assert!(Cli::try_parse_from(["ilink", "sim", "--base-url", "http://a/"]).is_err());
        assert!(
            Cli::try_parse_from(["ilink", "decrypt", "--account", "x", "--key", "k", "a", "b"])
                .is_err()
        );
        let m = command()
            .try_get_matches_from([
                "ilink",
                "--account",
                "top",
                "send",
                "--account",
                "own",
                "--to",
                "u",
                "--text",
                "t",
            ])
            .unwrap();
        let cli = Cli::from_arg_matches(&m).unwrap();
        let Command::Send { net, .. } = &cli.command else {
            panic!()
        };
        let merged = merge(&cli.net, net, &m);
        assert_eq!(merged.account.as_deref(), Some("own"));
        assert!(!merged.base_url_given);
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
    }

    #[test]
    fn max_is_at_least_one() {
        assert!(Cli::try_parse_from(["ilink", "tail", "--max", "0"]).is_err());
        assert!(Cli::try_parse_from(["ilink", "echo", "--max", "0"]).is_err());
        assert!(Cli::try_parse_from(["ilink", "tail", "--max", "1"]).is_ok());
    }
}
