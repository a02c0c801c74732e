#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod commands;
mod demo;
mod error;
mod net;
mod offline;
mod progress;
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

/// Where the server, the CDN and the local state are (network and state commands only).
#[derive(Debug, Clone, Default, Args)]
#[command(
    next_help_heading = "Server and state (login, echo, tail, send, download, doctor, accounts, users, logout)"
)]
pub struct NetArgs {
    /// Bot API base URL (default: the account's saved URL, else https://ilinkai.weixin.qq.com).
    /// Also the QR login host. Given for a saved account, it is used and saved (with a notice).
    #[arg(long, global = true, env = "ILINK_BASE_URL", value_name = "URL", value_parser = net::parse_url)]
    pub base_url: Option<String>,
    /// CDN base URL for media (default: https://novac2c.cdn.weixin.qq.com/c2c).
    #[arg(long, global = true, env = "ILINK_CDN_BASE_URL", value_name = "URL", value_parser = net::parse_url)]
    pub cdn_base_url: Option<String>,
    /// Directory with credentials, cursors and context tokens (default: $XDG_STATE_HOME/ilink,
    /// else ~/.local/state/ilink).
    #[arg(long, global = true, env = "ILINK_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Which stored bot account to use (`…@im.bot`) when there are several.
    #[arg(long, global = true, env = "ILINK_ACCOUNT", value_name = "ID")]
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
    Login,
    /// List the bot accounts saved in the state directory.
    Accounts {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// List the users an account can send to (those who wrote and left a context token).
    Users {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Forget a bot account: delete its saved credentials and state (refused while a
    /// process consumes its messages).
    Logout,
    /// Run an echo bot: text is echoed, media and voice are sent back. Consumes the
    /// account's messages: one consumer per account at a time.
    Echo {
        /// Stop after handling this many messages (at least 1; without it, run until stopped).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        max: Option<u64>,
        /// Prefix of echoed text.
        #[arg(long, default_value = "echo: ")]
        prefix: String,
    },
    /// Print incoming messages as they arrive. Consumes the account's messages (they count as
    /// handled): one consumer per account at a time.
    Tail {
        /// One JSON object per line (its `items` can be passed to `ilink download`).
        #[arg(long)]
        json: bool,
        /// Stop after this many messages (at least 1; without it, run until stopped).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        max: Option<u64>,
    },
    /// Send a message to a user who has written to the bot.
    Send(commands::SendArgs),
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
    /// Run the emulator (ilink-sim) on a port until Ctrl-C or SIGTERM.
    Sim(simcmd::SimArgs),
    /// Check the saved account: token, server, clock, and what is sent.
    Doctor {
        /// The checks as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout: `ilink man > ilink.1`.
    Man,
}

impl Command {
    /// Which of the server and state options the command uses.
    fn uses_net_options(&self) -> bool {
        !matches!(
            self,
            Self::Demo
                | Self::Decrypt { .. }
                | Self::Silk(_)
                | Self::Sim(_)
                | Self::Completions { .. }
                | Self::Man
        )
    }
}

/// The `ilink` command line, for completions and the man page.
pub fn command() -> clap::Command {
    Cli::command()
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
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(log.verbose > 1)
        .try_init();
}

/// The deepest subcommand's matches (global options are propagated there).
fn leaf(matches: &ArgMatches) -> &ArgMatches {
    let mut m = matches;
    while let Some((_, sub)) = m.subcommand() {
        m = sub;
    }
    m
}

fn given(m: &ArgMatches, id: &str) -> Option<ValueSource> {
    m.try_get_raw(id).ok().flatten()?;
    m.value_source(id)
}

const NET_FLAGS: [&str; 4] = ["--base-url", "--cdn-base-url", "--state-dir", "--account"];

/// The server and state options written after the subcommand's name in `args` (the
/// command line without the program name). Before it they are the shared settings of a
/// wrapper or alias and apply where they can.
fn net_flags_after_subcommand(args: &[String]) -> Vec<&'static str> {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        if NET_FLAGS.contains(&a.as_str()) {
            i += 2;
            continue;
        }
        if a.starts_with('-') {
            i += 1;
            continue;
        }
        break;
    }
    let after = args.get(i + 1..).unwrap_or_default();
    NET_FLAGS
        .into_iter()
        .filter(|f| {
            after
                .iter()
                .take_while(|a| a.as_str() != "--")
                .any(|a| a == f || a.starts_with(&format!("{f}=")))
        })
        .collect()
}

/// Refuses server and state options given to a command that ignores them
/// (`ilink sim --base-url x`, `ilink decrypt --account nobody`).
fn check_applicable(cli: &Cli, matches: &ArgMatches, args: &[String]) -> Result<(), CliError> {
    if cli.command.uses_net_options() {
        return Ok(());
    }
    let name = matches.subcommand_name().unwrap_or("this command");
    match net_flags_after_subcommand(args).first() {
        Some(flag) => Err(
            CliError::usage(format!("{flag} does not apply to `ilink {name}`"))
                .hint(format!("remove {flag}; see `ilink {name} --help`")),
        ),
        None => Ok(()),
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let net = cli.net;
    match cli.command {
        Command::Demo => demo::run().await,
        Command::Login => commands::login(&net).await,
        Command::Accounts { json } => commands::accounts(&net, json),
        Command::Users { json } => commands::users(&net, json),
        Command::Logout => commands::logout(&net),
        Command::Echo { max, prefix } => commands::echo(&net, max, &prefix).await,
        Command::Tail { json, max } => commands::tail(&net, json, max).await,
        Command::Send(args) => commands::send(&net, args).await,
        Command::Download(args) => commands::download(&net, args).await,
        Command::Decrypt { key, input, output } => offline::decrypt(&key, &input, &output).await,
        Command::Silk(cmd) => offline::silk(cmd).await,
        Command::Sim(args) => simcmd::run(args).await,
        Command::Doctor { json } => commands::doctor(&net, json).await,
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

fn main() -> ExitCode {
    let matches = match command().try_get_matches() {
        Ok(m) => m,
        Err(e) => e.exit(),
    };
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    cli.net.base_url_given = given(leaf(&matches), "base_url").is_some();
    init_logs(cli.log);
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = check_applicable(&cli, &matches, &args) {
        report(&e);
        return ExitCode::from(e.exit as u8);
    }
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
    match runtime.block_on(run(cli)) {
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
    fn net_flags_are_found_after_the_subcommand_only() {
        let v = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(net_flags_after_subcommand(&v(&["--base-url", "sim", "sim"])).is_empty());
        assert!(
            net_flags_after_subcommand(&v(&["-v", "--state-dir", "d", "decrypt", "a"])).is_empty()
        );
        assert_eq!(
            net_flags_after_subcommand(&v(&["sim", "--base-url", "x"])),
            vec!["--base-url"]
        );
        assert_eq!(
            net_flags_after_subcommand(&v(&["silk", "decode", "--account=x", "a", "b"])),
            vec!["--account"]
        );
    }

    #[test]
    fn max_is_at_least_one() {
        assert!(Cli::try_parse_from(["ilink", "tail", "--max", "0"]).is_err());
        assert!(Cli::try_parse_from(["ilink", "echo", "--max", "0"]).is_err());
        assert!(Cli::try_parse_from(["ilink", "tail", "--max", "1"]).is_ok());
    }
}
