//! `cargo xtask bench`: run the criterion benches and the reference tools, print one table.
//!
//! Rows come from three places, all measured in the same run:
//! - criterion: every benchmark of `ilink-benches` that ran now
//!   (`target/criterion/**/new/{benchmark,estimates}.json`);
//! - our benches' own reports: bench binaries that measure things criterion cannot express
//!   (latency percentiles, accounts per process, RSS) write tab-separated rows
//!   `area \t measurement \t ilink \t reference` into `$ILINK_BENCH_REPORT_DIR/*.tsv`;
//! - references: `openssl speed -evp aes-128-ecb` for AES, and silk-python (`pysilk`, installed
//!   into a throwaway virtualenv under `target/xtask/`) for SILK real-time factors.
//!
//! The benches run with ilink-benches' `c-reference` feature (the SILK SDK's C code, needs
//! libclang): `silk_60s_speech/encode_24k_24kbps` is ilink's public encoder, and
//! `silk_60s_speech/c_reference_encode_24k_24kbps` the C encoder on the same PCM, for context;
//! both get their ratio to silk-python's encode.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime};

use crate::util::{self, Error, Result};

/// The SILK reference: silk-python encodes and decodes the same PCM as our silk bench (the
/// bench writes its 60 s of 24 kHz speech to `$ILINK_SILK_BENCH_PCM`), with the same settings
/// (24 kbps, complexity 2, Tencent layout), timed in-process. Without that file it falls
/// back to 10 s of a synthetic voiced signal.
const PYSILK_SCRIPT: &str = r#"
import io, math, os, struct, sys, time
import pysilk
RATE = 24000
reps = int(sys.argv[1])
path = sys.argv[2] if len(sys.argv) > 2 else ""
if path and os.path.exists(path):
    pcm = open(path, "rb").read()
    source = "the silk bench's speech"
else:
    n = RATE * 10
    out = []
    for i in range(n):
        t = i / RATE
        f0 = 140 + 40 * math.sin(2 * math.pi * 0.7 * t)
        v = sum(math.sin(2 * math.pi * f0 * k * t) / k for k in range(1, 6))
        out.append(int(max(-1.0, min(1.0, v * 0.3)) * 32000))
    pcm = struct.pack("<%dh" % n, *out)
    source = "synthetic voiced signal"
seconds = len(pcm) / 2 / RATE

def best(fn):
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)

def enc():
    out = io.BytesIO()
    pysilk.encode(io.BytesIO(pcm), out, RATE, 24000, complexity=2, tencent=True)
    return out.getvalue()

silk = enc()
def dec():
    pysilk.decode(io.BytesIO(silk), io.BytesIO(), RATE)

print("encode_rtf", seconds / best(enc))
print("decode_rtf", seconds / best(dec))
print("audio_seconds", seconds)
print("source", source)
"#;

struct Options {
    benches: Vec<String>,
    all_rows: bool,
    quick: bool,
    references: bool,
    markdown: Option<PathBuf>,
}

/// One line of the result table.
struct Row {
    area: String,
    measurement: String,
    ilink: String,
    reference: String,
}

/// One criterion benchmark result.
struct Criterion {
    id: String,
    mean_ns: f64,
    throughput: Option<Throughput>,
}

enum Throughput {
    Bytes(f64),
    Elements(f64),
}

/// Entry point of `cargo xtask bench`.
pub fn run(args: &[String]) -> Result<()> {
    let mut opts = Options {
        benches: Vec::new(),
        all_rows: false,
        quick: false,
        references: true,
        markdown: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => opts.quick = true,
            "--all" => opts.all_rows = true,
            "--no-reference" => opts.references = false,
            "--markdown" => {
                let path: String = util::flag_value(arg, &mut it)?;
                opts.markdown = Some(PathBuf::from(path));
            }
            flag if flag.starts_with('-') => {
                return Err(Error::usage(format!("bench: unknown option `{flag}`")));
            }
            name => opts.benches.push(name.to_owned()),
        }
    }
    let root = util::root();
    let load_before = load_average();
    let report_dir = root.join("target").join("ilink-bench");
    if report_dir.exists() {
        fs::remove_dir_all(&report_dir)?;
    }
    fs::create_dir_all(&report_dir)?;

    // The AES reference first, while the machine is as quiet as it will get; the SILK one
    // after the benches, on the PCM the silk bench writes.
    let mut refs = References::default();
    if opts.references {
        refs.openssl = openssl_aes(opts.quick);
    }
    let speech = report_dir.join("speech60s.pcm");

    let started = SystemTime::now();
    let wall = Instant::now();
    let mut cmd = Command::new(util::cargo());
    // c-reference: the C decoder/encoder comparison lines (silk_decoder, the silk bench's C
    // encoder); the README's `cargo test --workspace` never enables it.
    cmd.args(["bench", "-p", "ilink-benches", "--features", "c-reference"]);
    for name in &opts.benches {
        cmd.args(["--bench", name]);
    }
    cmd.current_dir(&root)
        .env("ILINK_BENCH_REPORT_DIR", &report_dir)
        .env("ILINK_SILK_BENCH_PCM", &speech);
    if opts.quick {
        cmd.env("ILINK_BENCH_QUICK", "1");
        cmd.args(["--", "--warm-up-time", "1", "--measurement-time", "2"]);
    }
    util::run_checked(&mut cmd)?;
    let bench_seconds = wall.elapsed().as_secs_f64();
    if opts.references {
        refs.pysilk = pysilk(&root, opts.quick, &speech);
    }

    let mut results = Vec::new();
    collect_criterion(
        &root.join("target").join("criterion"),
        started,
        &mut results,
    );
    results.sort_by(|a, b| a.id.cmp(&b.id));
    let mut rows = Vec::new();
    if !opts.all_rows {
        // AES runs at 1 KiB..16 MiB in four variants each; the table keeps the 16 KiB rows,
        // the size openssl is measured at. `--all` (or target/criterion) has the rest.
        results.retain(|r| !r.id.to_ascii_lowercase().contains("aes") || r.id.contains("16KiB"));
    }
    criterion_rows(&results, &refs, &mut rows);
    report_rows(&report_dir, &mut rows)?;
    reference_only_rows(&results, &refs, &mut rows);

    let mut out = String::new();
    let _ = writeln!(out, "{}", machine(load_before, bench_seconds));
    let _ = writeln!(out, "| area | measurement | ilink | reference (same run) |");
    let _ = writeln!(out, "|---|---|---:|---|");
    for row in &rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            row.area, row.measurement, row.ilink, row.reference
        );
    }
    println!("\n{out}");
    if let Some(path) = &opts.markdown {
        fs::write(path, &out)?;
        eprintln!("xtask: wrote {}", path.display());
    }
    Ok(())
}

struct References {
    /// openssl's AES-128-ECB throughput on 16 KiB blocks, bytes per second.
    openssl: Option<f64>,
    /// silk-python's (encode, decode) real-time factors, or why they are missing.
    pysilk: std::result::Result<(f64, f64), String>,
}

impl Default for References {
    fn default() -> Self {
        Self {
            openssl: None,
            pysilk: Err("not measured (--no-reference)".to_owned()),
        }
    }
}

/// `openssl speed -evp aes-128-ecb -bytes 16384`, parsed into bytes per second.
fn openssl_aes(quick: bool) -> Option<f64> {
    let seconds = if quick { "1" } else { "3" };
    eprintln!("xtask: measuring the AES reference: openssl speed -evp aes-128-ecb -bytes 16384");
    let out = util::output_of(Command::new("openssl").args([
        "speed",
        "-evp",
        "aes-128-ecb",
        "-bytes",
        "16384",
        "-seconds",
        seconds,
    ]))?;
    parse_openssl_speed(&out)
}

/// The result line looks like `AES-128-ECB  4512345.67k` (thousands of bytes per second).
fn parse_openssl_speed(out: &str) -> Option<f64> {
    let line = out
        .lines()
        .rev()
        .find(|l| l.to_ascii_lowercase().starts_with("aes-128-ecb"))?;
    let value = line.split_whitespace().last()?;
    let kilo: f64 = value.strip_suffix('k')?.parse().ok()?;
    Some(kilo * 1000.0)
}

/// Measures silk-python in a throwaway virtualenv under `target/xtask/pysilk-venv`.
fn pysilk(root: &Path, quick: bool, pcm: &Path) -> std::result::Result<(f64, f64), String> {
    let venv = root.join("target").join("xtask").join("pysilk-venv");
    let python = venv.join("bin").join("python");
    if !python.exists() {
        eprintln!(
            "xtask: creating a virtualenv for silk-python in {}",
            venv.display()
        );
        util::run_checked(Command::new("python3").args(["-m", "venv"]).arg(&venv))
            .map_err(|e| format!("no virtualenv: {e}"))?;
    }
    let has_pysilk = Command::new(&python)
        .args(["-c", "import pysilk"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_pysilk {
        util::run_checked(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "-q",
            "silk-python",
        ]))
        .map_err(|e| format!("pip install silk-python failed: {e}"))?;
    }
    eprintln!("xtask: measuring the SILK reference: silk-python (pysilk)");
    let reps = if quick { "2" } else { "5" };
    let out = util::output_of(
        Command::new(&python)
            .args(["-c", PYSILK_SCRIPT, reps])
            .arg(pcm),
    )
    .ok_or_else(|| "the pysilk script failed".to_owned())?;
    eprint!("xtask: silk-python: {out}");
    let value = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    match (value("encode_rtf"), value("decode_rtf")) {
        (Some(e), Some(d)) => Ok((e, d)),
        _ => Err(format!("unexpected pysilk output: {out}")),
    }
}

/// Walks `target/criterion` for `new/` directories written after `since`.
fn collect_criterion(dir: &Path, since: SystemTime, out: &mut Vec<Criterion>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            if let Some(result) = read_criterion(&path, since) {
                out.push(result);
            }
        } else if path.file_name().is_some_and(|n| n != "report") {
            collect_criterion(&path, since, out);
        }
    }
}

fn read_criterion(dir: &Path, since: SystemTime) -> Option<Criterion> {
    let estimates_path = dir.join("estimates.json");
    let modified = fs::metadata(&estimates_path).ok()?.modified().ok()?;
    if modified < since {
        return None;
    }
    let estimates = fs::read_to_string(&estimates_path).ok()?;
    let benchmark = fs::read_to_string(dir.join("benchmark.json")).ok()?;
    let mean_start = estimates.find("\"mean\"")?;
    let mean_ns = util::json_number(estimates.get(mean_start..)?, "point_estimate")?;
    let id = util::json_string(&benchmark, "full_id")?;
    let throughput = if let Some(b) = util::json_number(&benchmark, "Bytes") {
        Some(Throughput::Bytes(b))
    } else if let Some(b) = util::json_number(&benchmark, "BytesDecimal") {
        Some(Throughput::Bytes(b))
    } else {
        util::json_number(&benchmark, "Elements").map(Throughput::Elements)
    };
    Some(Criterion {
        id,
        mean_ns,
        throughput,
    })
}

fn fmt_time(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// Bytes per second, in MiB/s (or GiB/s above 1 GiB/s).
pub fn fmt_bytes_rate(bytes_per_sec: f64) -> String {
    let mib = bytes_per_sec / (1024.0 * 1024.0);
    if mib >= 1024.0 {
        format!("{:.2} GiB/s", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB/s")
    }
}

fn fmt_count_rate(per_sec: f64) -> String {
    if per_sec >= 1e6 {
        format!("{:.2} M/s", per_sec / 1e6)
    } else if per_sec >= 1e3 {
        format!("{:.1} k/s", per_sec / 1e3)
    } else {
        format!("{per_sec:.1} /s")
    }
}

/// The area of a benchmark: the first segment of its id (`aes/encrypt/16384` -> `aes`).
fn area_of(id: &str) -> String {
    id.split('/').next().unwrap_or(id).to_owned()
}

/// The SILK real-time factor of a silk bench: it declares its throughput in seconds of
/// audio (`Throughput::Elements`), so audio seconds per wall-clock second.
fn silk_rtf(result: &Criterion) -> Option<f64> {
    match result.throughput {
        Some(Throughput::Elements(seconds))
            if result.mean_ns > 0.0 && result.id.to_ascii_lowercase().contains("silk") =>
        {
            Some(seconds / (result.mean_ns / 1e9))
        }
        _ => None,
    }
}

fn criterion_rows(results: &[Criterion], refs: &References, rows: &mut Vec<Row>) {
    for result in results {
        let area = area_of(&result.id);
        let lower = result.id.to_ascii_lowercase();
        let mut ilink = fmt_time(result.mean_ns);
        let mut reference = String::new();
        match &result.throughput {
            Some(Throughput::Bytes(bytes)) => {
                let rate = bytes / (result.mean_ns / 1e9);
                ilink = format!("{} ({})", fmt_bytes_rate(rate), fmt_time(result.mean_ns));
                if lower.contains("aes")
                    && let Some(openssl) = refs.openssl
                {
                    reference = format!(
                        "openssl speed -evp aes-128-ecb -bytes 16384: {} (ilink = {:.2}x)",
                        fmt_bytes_rate(openssl),
                        rate / openssl
                    );
                }
            }
            Some(Throughput::Elements(n)) if lower.contains("silk") => {
                if let Some(rtf) = silk_rtf(result) {
                    ilink = format!("{rtf:.0}x real time ({})", fmt_time(result.mean_ns));
                    // pysilk has the same two operations: SILK encode and decode at 24 kHz.
                    let pick = |(e, d): (f64, f64)| {
                        if lower.contains("encode_24k") {
                            Some(e)
                        } else if lower.contains("decode_24k") {
                            Some(d)
                        } else {
                            None
                        }
                    };
                    // The C encoder's line is context: name it so its ratio is not read as
                    // ilink's.
                    let who = if lower.contains("c_reference") {
                        "C SDK encoder"
                    } else {
                        "ilink"
                    };
                    reference = match &refs.pysilk {
                        Ok(pair) => pick(*pair).map_or_else(String::new, |r| {
                            format!(
                                "silk-python, same PCM and settings: {r:.0}x real time ({who} = {:.2}x)",
                                rtf / r
                            )
                        }),
                        Err(why) => format!("silk-python skipped: {why}"),
                    };
                } else {
                    ilink = format!("{} ({n} samples)", fmt_time(result.mean_ns));
                }
            }
            Some(Throughput::Elements(n)) => {
                let rate = n / (result.mean_ns / 1e9);
                ilink = format!("{} ({})", fmt_count_rate(rate), fmt_time(result.mean_ns));
            }
            None => {}
        }
        rows.push(Row {
            area,
            measurement: result.id.clone(),
            ilink,
            reference,
        });
    }
}

/// Rows written by the bench binaries themselves (`*.tsv` in the report directory).
fn report_rows(dir: &Path, rows: &mut Vec<Row>) -> Result<()> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "tsv"))
        .collect();
    files.sort();
    for file in files {
        for line in fs::read_to_string(&file)?.lines() {
            let mut cols = line.split('\t');
            let (Some(area), Some(measurement), Some(ilink)) =
                (cols.next(), cols.next(), cols.next())
            else {
                continue;
            };
            rows.push(Row {
                area: area.to_owned(),
                measurement: measurement.to_owned(),
                ilink: ilink.to_owned(),
                reference: cols.next().unwrap_or("").to_owned(),
            });
        }
    }
    Ok(())
}

/// References measured although no matching ilink bench ran: still shown, so the table
/// says what the machine does.
fn reference_only_rows(results: &[Criterion], refs: &References, rows: &mut Vec<Row>) {
    let has = |word: &str| {
        results
            .iter()
            .any(|r| r.id.to_ascii_lowercase().contains(word))
    };
    if !has("aes")
        && let Some(openssl) = refs.openssl
    {
        rows.push(Row {
            area: "aes".into(),
            measurement: "AES-128-ECB, 16 KiB buffers".into(),
            ilink: "(no aes bench ran)".into(),
            reference: format!(
                "openssl speed -evp aes-128-ecb: {}",
                fmt_bytes_rate(openssl)
            ),
        });
    }
    if !results.iter().any(|r| silk_rtf(r).is_some()) {
        let reference = match &refs.pysilk {
            Ok((e, d)) => format!("silk-python: encode {e:.0}x, decode {d:.0}x real time"),
            Err(why) => format!("silk-python skipped: {why}"),
        };
        rows.push(Row {
            area: "silk".into(),
            measurement: "SILK encode/decode real-time factor, 24 kHz mono".into(),
            ilink: "(no silk bench with sample throughput ran)".into(),
            reference,
        });
    }
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// A description of the machine and the run, printed above the table.
fn machine(load_before: String, bench_seconds: f64) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let date = util::output_of(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
        .unwrap_or_default();
    let rustc = util::output_of(Command::new("rustc").arg("-V")).unwrap_or_default();
    format!(
        "Machine: {cores} cores (nproc), {cpu}; {}; {}; load average {load_before} before, {} after; \
         criterion run took {bench_seconds:.0} s. AES reference: \
         `openssl speed -evp aes-128-ecb -bytes 16384`.\n",
        date.trim(),
        rustc.trim(),
        load_average()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openssl_speed_output() {
        let out = "\
The 'numbers' are in 1000s of bytes per second processed.
type          16384 bytes
AES-128-ECB    5242880.00k
";
        assert_eq!(parse_openssl_speed(out), Some(5_242_880_000.0));
        assert_eq!(parse_openssl_speed("nothing here"), None);
    }

    #[test]
    fn formats_rates_and_times() {
        assert_eq!(fmt_bytes_rate(2.0 * 1024.0 * 1024.0 * 1024.0), "2.00 GiB/s");
        assert_eq!(fmt_bytes_rate(512.0 * 1024.0 * 1024.0), "512.0 MiB/s");
        assert_eq!(fmt_time(1500.0), "1.50 µs");
        assert_eq!(fmt_time(12.0), "12.0 ns");
        assert_eq!(fmt_count_rate(2500.0), "2.5 k/s");
    }

    #[test]
    fn silk_rtf_is_audio_seconds_per_second() {
        let r = Criterion {
            id: "silk_60s_speech/decode_24k".into(),
            mean_ns: 0.1e9,
            throughput: Some(Throughput::Elements(10.0)),
        };
        // 10 s of audio in 0.1 s
        assert_eq!(silk_rtf(&r).map(|x| x.round()), Some(100.0));
    }
}
