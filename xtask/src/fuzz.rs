//! `cargo xtask fuzz`: build and run the cargo-fuzz targets in `fuzz/` on the stable toolchain.
//!
//! For every target: first the committed seed corpus (`fuzz/corpus/<target>`) and the committed
//! crash regressions (`fuzz/regressions/<target>`) are replayed once each; then libFuzzer runs
//! for the given time, with a scratch corpus under `target/fuzz/corpus/<target>` so that new
//! inputs never dirty the committed seeds. Any crash, timeout or out-of-memory fails the command.
//!
//! Everything is built with AddressSanitizer (cargo-fuzz's default `-Zsanitizer=address`), and
//! `CFLAGS=-fsanitize=address` makes the `cc` build of the SILK C code instrumented too, so the
//! `silk` targets check the C decoder and encoder for memory errors, not only the Rust side.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::util::{self, Error, Result};

/// Default libFuzzer time per target, in seconds.
const DEFAULT_SECONDS: u64 = 15;
/// An input that runs longer than this (seconds) counts as a hang and fails the run.
const INPUT_TIMEOUT_SECONDS: u64 = 30;
/// `--smoke` (what CI runs): libFuzzer inputs per target, and its fixed seed. A fixed seed, a fixed
/// number of runs, a fresh scratch corpus and the same C build keep the smoke close to
/// reproducible (not exactly: Rust's randomized hashing and ASLR still vary coverage a little);
/// any input that fails is saved under fuzz/artifacts/ and replays with `--replay` once copied
/// into fuzz/regressions/.
const SMOKE_RUNS: u64 = 1000;
const SMOKE_SEED: u64 = 1;
/// Upper bound of a smoke run per target, in seconds, on a slow or loaded machine.
const SMOKE_MAX_SECONDS: u64 = 60;

struct Options {
    targets: Vec<String>,
    seconds: u64,
    /// Stop after this many inputs (libFuzzer `-runs`), still bounded by `seconds`.
    runs: Option<u64>,
    /// libFuzzer's `-seed`; random when absent.
    seed: Option<u64>,
    /// Start from an empty scratch corpus instead of the one earlier runs left in target/.
    fresh: bool,
    /// Build the C code with clang and libFuzzer coverage when clang is on PATH. Off in
    /// `--smoke`, so that the smoke builds the same binary on every machine, with or without clang.
    c_coverage: bool,
    replay_only: bool,
    sanitizer: String,
}

/// Entry point of `cargo xtask fuzz`.
pub fn run(args: &[String]) -> Result<()> {
    let fuzz_dir = util::root().join("fuzz");
    let all = list_targets(&fuzz_dir)?;
    let mut opts = Options {
        targets: Vec::new(),
        seconds: DEFAULT_SECONDS,
        runs: None,
        seed: None,
        fresh: false,
        c_coverage: true,
        replay_only: false,
        sanitizer: "address".to_owned(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" | "-s" => opts.seconds = util::flag_value(arg, &mut it)?,
            "--runs" => opts.runs = Some(util::flag_value(arg, &mut it)?),
            "--seed" => opts.seed = Some(util::flag_value(arg, &mut it)?),
            "--smoke" => {
                opts.targets.clear();
                opts.runs = Some(SMOKE_RUNS);
                opts.seed = Some(SMOKE_SEED);
                opts.seconds = SMOKE_MAX_SECONDS;
                opts.fresh = true;
                opts.c_coverage = false;
            }
            "--replay" => opts.replay_only = true,
            "--sanitizer" => opts.sanitizer = util::flag_value(arg, &mut it)?,
            "--list" => {
                for target in &all {
                    println!("{target}");
                }
                return Ok(());
            }
            flag if flag.starts_with('-') => {
                return Err(Error::usage(format!("fuzz: unknown option `{flag}`")));
            }
            name => {
                if !all.iter().any(|t| t == name) {
                    return Err(Error::usage(format!(
                        "fuzz: no target `{name}`; targets: {}",
                        all.join(", ")
                    )));
                }
                opts.targets.push(name.to_owned());
            }
        }
    }
    if opts.targets.is_empty() {
        opts.targets = all;
    }
    ensure_cargo_fuzz()?;
    if opts.sanitizer == "address" {
        match clang().filter(|_| opts.c_coverage) {
            Some(cc) => eprintln!("xtask: C code: {cc}, AddressSanitizer + libFuzzer coverage"),
            None => {
                eprintln!("xtask: C code: cc, AddressSanitizer only (no clang on PATH, or --smoke)")
            }
        }
    }
    build(&fuzz_dir, &opts)?;

    let mut reports = Vec::new();
    let mut failed = Vec::new();
    for target in &opts.targets {
        let report = run_target(&fuzz_dir, target, &opts)?;
        if !report.ok {
            failed.push(target.clone());
        }
        reports.push(report);
    }
    print_summary(&reports, &opts);
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::new(format!(
            "fuzz: {} failed: {}; see the log above. A committed input that fails is in \
             fuzz/corpus/<target>/ or fuzz/regressions/<target>/; a new one is saved under \
             fuzz/artifacts/<target>/: fix the bug, then copy it into fuzz/regressions/<target>/.",
            if failed.len() == 1 {
                "target"
            } else {
                "targets"
            },
            failed.join(", ")
        )))
    }
}

/// The fuzz targets: one `fuzz/fuzz_targets/<name>.rs` each.
fn list_targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let dir = fuzz_dir.join("fuzz_targets");
    let mut targets: Vec<String> = fs::read_dir(&dir)
        .map_err(|err| Error::new(format!("cannot read {}: {err}", dir.display())))?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "rs").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    targets.sort();
    Ok(targets)
}

/// Installs cargo-fuzz if `cargo fuzz` is not available.
fn ensure_cargo_fuzz() -> Result<()> {
    let found = Command::new(util::cargo())
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Ok(());
    }
    eprintln!("xtask: cargo-fuzz is missing; installing it (takes a few minutes once)");
    util::run_checked(Command::new(util::cargo()).args(["install", "cargo-fuzz", "--locked"]))
}

/// A `cargo fuzz <sub>` command with the environment every call needs.
fn cargo_fuzz(fuzz_dir: &Path, sub: &str, opts: &Options) -> Command {
    let root = util::root();
    let mut cmd = Command::new(util::cargo());
    cmd.arg("fuzz")
        .arg(sub)
        .arg("--fuzz-dir")
        .arg(fuzz_dir)
        .arg("--target-dir")
        .arg(root.join("target").join("fuzz"))
        .arg("--sanitizer")
        .arg(&opts.sanitizer)
        .current_dir(&root)
        // cargo-fuzz passes nightly-only flags (-Zsanitizer, -Cpasses=sancov-module...);
        // RUSTC_BOOTSTRAP lets the stable compiler accept them.
        .env("RUSTC_BOOTSTRAP", "1");
    if opts.sanitizer == "address" {
        // Instrument the C code that `cc` builds (the SILK SDK) as well.
        let mut cflags = std::env::var("CFLAGS").unwrap_or_default();
        if !cflags.contains("-fsanitize=address") {
            cflags.push_str(" -fsanitize=address -fno-omit-frame-pointer");
        }
        // With clang the C code also gets libFuzzer's coverage counters, so the fuzzer is
        // guided through the SILK decoder, not only through our Rust. gcc has no
        // libFuzzer-compatible coverage, so there the C code is only checked by ASan.
        if let Some(clang) = clang().filter(|_| opts.c_coverage) {
            if !cflags.contains("fuzzer-no-link") {
                cflags.push_str(" -fsanitize=fuzzer-no-link");
            }
            cmd.env("CC", clang);
        }
        cmd.env("CFLAGS", cflags.trim());
    }
    cmd
}

/// A clang on PATH (`$CC` if it is clang), for the C code of the fuzz build.
fn clang() -> Option<String> {
    let cc = std::env::var("CC").ok().filter(|cc| cc.contains("clang"));
    let candidates = cc.into_iter().chain(
        std::iter::once("clang".to_owned()).chain((14..=20).rev().map(|v| format!("clang-{v}"))),
    );
    for candidate in candidates {
        let works = Command::new(&candidate)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if works {
            return Some(candidate);
        }
    }
    None
}

fn build(fuzz_dir: &Path, opts: &Options) -> Result<()> {
    let mut cmd = cargo_fuzz(fuzz_dir, "build", opts);
    if opts.targets.len() == 1 {
        cmd.args(&opts.targets);
    }
    util::run_checked(&mut cmd)
}

struct Report {
    target: String,
    replayed: usize,
    executions: Option<u64>,
    execs_per_sec: Option<u64>,
    corpus: Option<String>,
    coverage: Option<u64>,
    seconds: f64,
    ok: bool,
}

fn files_in(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, |d| {
        d.filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .count()
    })
}

fn run_target(fuzz_dir: &Path, target: &str, opts: &Options) -> Result<Report> {
    let root = util::root();
    let seeds = fuzz_dir.join("corpus").join(target);
    let regressions = fuzz_dir.join("regressions").join(target);
    let logs = root.join("target").join("fuzz").join("logs");
    fs::create_dir_all(&logs)?;
    let mut report = Report {
        target: target.to_owned(),
        replayed: files_in(&seeds) + files_in(&regressions),
        executions: None,
        execs_per_sec: None,
        corpus: None,
        coverage: None,
        seconds: 0.0,
        ok: true,
    };

    // 1. Replay every committed input once.
    let mut dirs = Vec::new();
    for dir in [&seeds, &regressions] {
        if files_in(dir) > 0 {
            dirs.push(dir.clone());
        }
    }
    if !dirs.is_empty() {
        eprintln!(
            "xtask: {target}: replaying {} committed inputs",
            report.replayed
        );
        let log = logs.join(format!("{target}.replay.log"));
        let mut cmd = cargo_fuzz(fuzz_dir, "run", opts);
        cmd.arg(target).args(&dirs).arg("--").arg("-runs=0");
        if !run_logged(&mut cmd, &log)? {
            report.ok = false;
            return Ok(report);
        }
    }
    if opts.replay_only {
        return Ok(report);
    }

    // 2. Fuzz, with a scratch corpus first so new inputs land outside the repository.
    let scratch = if opts.fresh {
        let dir = root
            .join("target")
            .join("fuzz")
            .join("smoke-corpus")
            .join(target);
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        dir
    } else {
        root.join("target").join("fuzz").join("corpus").join(target)
    };
    fs::create_dir_all(&scratch)?;
    match opts.runs {
        Some(runs) => eprintln!(
            "xtask: {target}: fuzzing {runs} inputs (at most {} s)",
            opts.seconds
        ),
        None => eprintln!("xtask: {target}: fuzzing for {} s", opts.seconds),
    }
    let log = logs.join(format!("{target}.log"));
    let mut cmd = cargo_fuzz(fuzz_dir, "run", opts);
    cmd.arg(target).arg(&scratch);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    cmd.arg("--")
        .arg(format!("-max_total_time={}", opts.seconds))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECONDS}"))
        .arg("-print_final_stats=1");
    if let Some(runs) = opts.runs {
        cmd.arg(format!("-runs={runs}"));
    }
    if let Some(seed) = opts.seed {
        cmd.arg(format!("-seed={seed}"));
    }
    let started = Instant::now();
    report.ok = run_logged(&mut cmd, &log)?;
    report.seconds = started.elapsed().as_secs_f64();
    let text = fs::read_to_string(&log).unwrap_or_default();
    parse_stats(&text, &mut report);
    Ok(report)
}

/// Runs a command with stdout and stderr sent to `log`; on failure prints the log's tail.
fn run_logged(cmd: &mut Command, log: &Path) -> Result<bool> {
    let file = fs::File::create(log)?;
    let status = cmd
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .map_err(|err| Error::new(format!("could not start `{}`: {err}", util::show(cmd))))?;
    if status.success() {
        return Ok(true);
    }
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines.len().saturating_sub(60);
    eprintln!(
        "xtask: `{}` failed ({status}); last lines of {}:",
        util::show(cmd),
        log.display()
    );
    for line in lines.iter().skip(tail) {
        eprintln!("    {line}");
    }
    Ok(false)
}

fn stat(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(name))
        .and_then(|rest| rest.trim_start_matches(':').trim().parse().ok())
}

fn parse_stats(text: &str, report: &mut Report) {
    report.executions = stat(text, "stat::number_of_executed_units");
    report.execs_per_sec = stat(text, "stat::average_exec_per_sec");
    // The last status line, e.g. "#123456 DONE cov: 812 ft: 2211 corp: 97/4113b ...".
    if let Some(line) = text
        .lines()
        .rev()
        .find(|l| l.starts_with('#') && l.contains("cov:"))
    {
        let mut words = line.split_whitespace();
        while let Some(word) = words.next() {
            match word {
                "cov:" => report.coverage = words.next().and_then(|w| w.parse().ok()),
                "corp:" => report.corpus = words.next().map(str::to_owned),
                _ => {}
            }
        }
    }
}

fn print_summary(reports: &[Report], opts: &Options) {
    println!();
    println!(
        "| target | replayed | executions | exec/s | coverage | corpus (files/bytes) | result |"
    );
    println!("|---|---:|---:|---:|---:|---|---|");
    for r in reports {
        let num = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.target,
            r.replayed,
            num(r.executions),
            num(r.execs_per_sec),
            num(r.coverage),
            r.corpus.as_deref().unwrap_or("-"),
            if r.ok { "ok" } else { "FAILED" },
        );
    }
    if !opts.replay_only {
        let total: f64 = reports.iter().map(|r| r.seconds).sum();
        let budget = match (opts.runs, opts.seed) {
            (Some(runs), Some(seed)) => format!("{runs} inputs each from seed {seed}"),
            (Some(runs), None) => format!("{runs} inputs each"),
            (None, _) => format!("{} s of fuzzing each", opts.seconds),
        };
        println!(
            "\n{} targets, {budget} ({total:.0} s wall in total), sanitizer: {}",
            reports.len(),
            opts.sanitizer
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libfuzzer_final_stats() {
        let log = "\
#1024\tpulse  cov: 300 ft: 700 corp: 40/1200b lim: 100 exec/s: 512 rss: 60Mb
#20000\tDONE   cov: 812 ft: 2211 corp: 97/4113b lim: 4096 exec/s: 1333 rss: 88Mb
Done 20000 runs in 15 second(s)
stat::number_of_executed_units: 20000
stat::average_exec_per_sec:     1333
stat::new_units_added:          57
";
        let mut report = Report {
            target: "t".into(),
            replayed: 0,
            executions: None,
            execs_per_sec: None,
            corpus: None,
            coverage: None,
            seconds: 0.0,
            ok: true,
        };
        parse_stats(log, &mut report);
        assert_eq!(report.executions, Some(20000));
        assert_eq!(report.execs_per_sec, Some(1333));
        assert_eq!(report.coverage, Some(812));
        assert_eq!(report.corpus.as_deref(), Some("97/4113b"));
    }
}
