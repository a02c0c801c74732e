//! `cargo xtask`: project automation.
//!
//! ```text
//! cargo xtask fuzz [TARGET] [--seconds N] [--runs N] [--seed S] [--smoke] [--replay] [--list]
//! cargo xtask bench [BENCH...] [--quick] [--all] [--no-reference] [--markdown FILE]
//! cargo xtask pesq [--markdown FILE] [--no-alsa]
//! cargo xtask public-api [-p PACKAGE]...
//! cargo xtask ci
//! cargo xtask man [--out DIR]
//! ```
//!
//! The arguments are parsed by hand rather than with clap: xtask is compiled on every
//! `cargo xtask` call (and cold in CI), and a handful of flags do not justify the compile
//! cost of a parser crate. xtask depends on std only for the same reason.
#![forbid(unsafe_code)]

mod bench;
mod fuzz;
mod man;
mod pesq;
mod public_api;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  fuzz [TARGET] [--seconds N] [--runs N] [--seed S] [--smoke] [--replay] [--list]
        Build the cargo-fuzz targets in fuzz/ on the stable toolchain, replay the
        committed corpus and regressions, then fuzz. Without TARGET every target runs,
        15 s each unless --seconds is given. --runs stops after N inputs, --seed fixes
        libFuzzer's seed. --smoke (what CI runs) is every target, 1000 inputs, seed 1,
        from an empty scratch corpus, the same C build everywhere. --replay only replays.
        A crash, a timeout or an out-of-memory fails the command.
  bench [BENCH...] [--quick] [--all] [--no-reference] [--markdown FILE]
        Run the benches in benches/ (all, or the named ones: aes, silk, wire, chunk,
        e2e...) and the reference tools (openssl, silk-python), then print one table.
        --quick shortens every measurement; --all keeps every AES size in the table;
        --markdown also writes the table, with the machine, to FILE.
  pesq [--markdown FILE] [--no-alsa]
        Wideband PESQ (P.862.2) of ilink's SILK encoder against the SILK SDK's C
        encoder on a speech corpus made with espeak-ng (needs `espeak-ng`) plus
        alsa-utils' voice clips (apt-get download; --no-alsa skips them): 24 kHz at
        24 kbit/s, and 16 kHz recordings against the C encoder at its own rate.
        Scores with the `pesq` PyPI package in a virtualenv under target/xtask.
        Fails unless ilink's 24 kHz mean is within 0.1 of C's, no file is 0.3
        worse, and its 16 kHz mean is no worse. --markdown writes the table.
  public-api [-p PACKAGE]...
        Check that a crate's public API (default: ilink-client) names only types it
        defines or re-exports (from its rustdoc JSON, built with RUSTC_BOOTSTRAP=1).
  ci    Run .ci/run, the CI script.
  man [--out DIR]
        Build `ilink` and write its man page (ilink.1) and shell completions (bash,
        zsh, fish) to DIR (default target/man).
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((command, rest)) => (command.as_str(), rest),
        None => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        "fuzz" => fuzz::run(rest),
        "bench" => bench::run(rest),
        "pesq" => pesq::run(rest),
        "public-api" => public_api::run(rest),
        "ci" => util::ci(rest),
        "man" => man::run(rest),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(util::Error::usage(format!("unknown command `{other}`"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err}");
            if err.is_usage() {
                eprint!("\n{USAGE}");
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
