//! `cargo xtask pesq`: wideband PESQ (ITU-T P.862.2) of ilink's SILK encoder against the SILK
//! SDK's C encoder, on a speech corpus made here.
//!
//! 1. The corpus: recordings synthesised with espeak-ng (Debian's `espeak-ng`; different voices,
//!    languages, speeds and pitches) and, when `apt-get download alsa-utils` works (or the files
//!    are installed), the human voice clips that alsa-utils ships (`/usr/share/sounds/alsa/`,
//!    GPL-2 like the package), joined into one recording.
//! 2. ilink-silk's `pesq_corpus` example (release, feature `c-reference`) encodes each
//!    recording at 24 kHz with ilink's public encoder and with the C encoder at the same settings
//!    (24 kbit/s, complexity 2), and at 16 kHz with ilink's public path (`encode_pcm(.., 16000,
//!    ..)`) and with the C encoder at its own rate (API and highest internal rate 16 kHz); the C
//!    decoder decodes every stream to 16 kHz.
//! 3. The `pesq` package from PyPI, in a throwaway virtualenv under `target/xtask/pesq-venv`,
//!    scores each decoding against its 16 kHz reference (`pesq(16000, ref, deg, "wb")`).
//!
//! Prints a table per recording with the means and deltas (`--markdown FILE` also writes it)
//! and fails unless: at 24 kHz, ilink's mean MOS is at most 0.1 below the C encoder's and no
//! recording is more than 0.3 below; at 16 kHz, ilink's mean is not below the C encoder's.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::{self, Error, Result};

/// At 24 kHz: ilink's mean MOS may be at most this much below the C encoder's.
const MAX_MEAN_DROP_24K: f64 = 0.1;
/// At 24 kHz: no recording's MOS may be more than this below the C encoder's.
const MAX_FILE_DROP_24K: f64 = 0.3;

/// One espeak-ng recording: name, voice (`-v`), speed (`-s`, words per minute), pitch (`-p`,
/// 0-99), text. English texts are Harvard sentences (IEEE 1969, public domain); the others are
/// ours.
const SPEECH: &[(&str, &str, u32, u32, &str)] = &[
    (
        "en-us_m_175",
        "en-us",
        175,
        50,
        "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. \
         It's easy to tell the depth of a well. These days a chicken leg is a rare dish.",
    ),
    (
        "en-gb_m_150",
        "en-gb",
        150,
        40,
        "The box was thrown beside the parked truck. The hogs were fed chopped corn and garbage. \
         Four hours of steady work faced us. A large size in stockings is hard to sell.",
    ),
    (
        "en-us_f3_190",
        "en-us+f3",
        190,
        70,
        "The boy was there when the sun rose. A rod is used to catch pink salmon. The source of \
         the huge river is the clear spring. Kick the ball straight and follow through.",
    ),
    (
        "en-scotland_m_130",
        "en-gb-scotland",
        130,
        30,
        "Rice is often served in round bowls. The juice of lemons makes fine punch. The small \
         pup gnawed a hole in the sock.",
    ),
    (
        "en-us_f4_220",
        "en-us+f4",
        220,
        85,
        "Help the woman get back to her feet. A pot of tea helps to pass the evening. Smoky \
         fires lack flame and heat. The soft cushion broke the man's fall.",
    ),
    (
        "de_m_160",
        "de",
        160,
        45,
        "Der schnelle Zug fährt heute Abend pünktlich nach Berlin. Bitte schicken Sie mir die \
         Nachricht morgen früh noch einmal.",
    ),
    (
        "fr_f2_170",
        "fr-fr+f2",
        170,
        60,
        "Le petit chat dort sur le canapé depuis ce matin. Nous partirons demain à huit heures \
         précises, avant la pluie.",
    ),
    (
        "es_m_180",
        "es",
        180,
        50,
        "El tren de la mañana llega siempre con diez minutos de retraso. ¿Puedes enviarme el \
         mensaje otra vez esta tarde?",
    ),
    (
        "cmn_m_150",
        "cmn",
        150,
        50,
        "今天下午我们在公园见面，然后一起去吃晚饭。请把这条语音消息发给你的朋友。",
    ),
    (
        "ru_m3_170",
        "ru+m3",
        170,
        35,
        "Завтра утром мы поедем на вокзал и купим билеты домой. Погода обещает быть тёплой.",
    ),
    (
        "it_m_200",
        "it",
        200,
        55,
        "La riunione di domani è stata spostata alle dieci del mattino. Porta con te i documenti.",
    ),
    (
        "pt-br_f4_140",
        "pt-br+f4",
        140,
        65,
        "O vento forte da noite derrubou as folhas do jardim inteiro. Amanhã vamos limpar tudo.",
    ),
    (
        "hi_m_160",
        "hi",
        160,
        50,
        "कल सुबह हम बाज़ार जाएँगे और ताज़ी सब्ज़ियाँ खरीदेंगे। फिर घर लौटकर खाना बनाएँगे।",
    ),
];

/// The human voice clips of alsa-utils, in the order they are joined.
const ALSA_CLIPS: &[&str] = &[
    "Front_Left.wav",
    "Front_Center.wav",
    "Front_Right.wav",
    "Side_Left.wav",
    "Side_Right.wav",
    "Rear_Left.wav",
    "Rear_Center.wav",
    "Rear_Right.wav",
];

/// Scores `name \t case \t ref \t ilink \t c \t ...` lines from stdin with wideband PESQ;
/// prints `name \t case \t ilink MOS \t c MOS`.
const SCORER: &str = r#"
import sys, wave
import numpy as np
from pesq import pesq

def load(path):
    with wave.open(path, "rb") as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32)

for line in sys.stdin:
    f = line.rstrip("\n").split("\t")
    if len(f) < 5:
        continue
    ref = load(f[2])
    scores = [pesq(16000, ref, load(p), "wb") for p in (f[3], f[4])]
    print("%s\t%s\t%.4f\t%.4f" % (f[0], f[1], scores[0], scores[1]), flush=True)
"#;

struct Options {
    markdown: Option<PathBuf>,
    human: bool,
}

/// One recording's scores.
#[derive(Debug, Clone, PartialEq)]
struct Score {
    name: String,
    case: String,
    ilink: f64,
    c: f64,
}

/// Entry point of `cargo xtask pesq`.
pub fn run(args: &[String]) -> Result<()> {
    let mut opts = Options {
        markdown: None,
        human: true,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--markdown" => {
                let path: String = util::flag_value(arg, &mut it)?;
                opts.markdown = Some(PathBuf::from(path));
            }
            "--no-alsa" => opts.human = false,
            other => return Err(Error::usage(format!("pesq: unknown argument `{other}`"))),
        }
    }
    let root = util::root();
    let dir = root.join("target").join("xtask").join("pesq");
    let corpus = dir.join("corpus");
    let out = dir.join("out");
    for d in [&corpus, &out] {
        if d.exists() {
            fs::remove_dir_all(d)?;
        }
        fs::create_dir_all(d)?;
    }

    let espeak = util::output_of(Command::new("espeak-ng").arg("--version")).ok_or_else(|| {
        Error::new("espeak-ng is needed for the speech corpus (apt-get install espeak-ng)")
    })?;
    let mut list = String::new();
    let mut voices = Vec::new();
    for (name, voice, speed, pitch, text) in SPEECH {
        let wav = corpus.join(format!("{name}.wav"));
        util::run_checked(
            Command::new("espeak-ng")
                .args([
                    "-v",
                    voice,
                    "-s",
                    &speed.to_string(),
                    "-p",
                    &pitch.to_string(),
                ])
                .arg("-w")
                .arg(&wav)
                .arg(text),
        )?;
        let _ = writeln!(list, "{name}\t{}", wav.display());
        voices.push((
            (*name).to_owned(),
            format!("espeak-ng `-v {voice} -s {speed} -p {pitch}`"),
        ));
    }
    if opts.human {
        match alsa_clips(&dir) {
            Ok(clips) => {
                let files: Vec<String> = clips.iter().map(|p| p.display().to_string()).collect();
                let _ = writeln!(list, "alsa-utils_voice\t{}", files.join("\t"));
                voices.push((
                    "alsa-utils_voice".to_owned(),
                    format!(
                        "human voice: alsa-utils' {} clips (`/usr/share/sounds/alsa`), joined",
                        clips.len()
                    ),
                ));
            }
            Err(why) => eprintln!("xtask: pesq: no alsa-utils recordings ({why}); espeak-ng only"),
        }
    }
    let list_path = dir.join("list.tsv");
    fs::write(&list_path, &list)?;

    // Encode and decode (ilink-silk's example, with the C reference).
    let mut cmd = Command::new(util::cargo());
    cmd.current_dir(&root)
        .args([
            "run",
            "--release",
            "-q",
            "-p",
            "ilink-silk",
            "--features",
            "c-reference",
            "--example",
            "pesq_corpus",
            "--",
        ])
        .arg(&list_path)
        .arg(&out);
    let manifest = stdout_with_input(&mut cmd, "", None)?;

    // Score.
    let python = pesq_python(&root)?;
    let mut scorer = Command::new(&python);
    scorer.args(["-c", SCORER]);
    let scored = stdout_with_input(
        &mut scorer,
        &manifest,
        Some(format!("{} -c <PESQ scorer> < manifest", python.display())),
    )?;
    let scores = parse_scores(&scored);
    if scores.is_empty() {
        return Err(Error::new(format!(
            "the PESQ scorer printed nothing: {scored}"
        )));
    }
    let pesq_version = util::output_of(Command::new(&python).args([
        "-c",
        "import importlib.metadata as m; print(m.version('pesq'))",
    ]))
    .unwrap_or_default();

    let (table, failures) = report(&scores, &voices);
    let header = format!(
        "Wideband PESQ (ITU-T P.862.2, `pesq` {} from PyPI, MOS-LQO) of SILK at 24 kbit/s, \
         complexity 2, both streams decoded by the SILK SDK's C decoder at 16 kHz; {} \
         recordings ({}); {}.\n",
        pesq_version.trim(),
        voices.len(),
        espeak.split("Data at").next().unwrap_or_default().trim(),
        util::output_of(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
            .unwrap_or_default()
            .trim()
    );
    let text = format!("{header}\n{table}");
    println!("\n{text}");
    if let Some(path) = &opts.markdown {
        fs::write(path, &text)?;
        eprintln!("xtask: wrote {}", path.display());
    }
    if failures.is_empty() {
        println!("PESQ thresholds met.");
        Ok(())
    } else {
        Err(Error::new(format!(
            "PESQ thresholds failed:\n  {}",
            failures.join("\n  ")
        )))
    }
}

/// The alsa-utils voice clips: installed ones, or extracted from `apt-get download
/// alsa-utils` into `dir/alsa-utils` (nothing is installed).
fn alsa_clips(dir: &Path) -> std::result::Result<Vec<PathBuf>, String> {
    let find = |base: &Path| -> Vec<PathBuf> {
        ALSA_CLIPS
            .iter()
            .map(|c| base.join(c))
            .filter(|p| p.is_file())
            .collect()
    };
    let installed = find(Path::new("/usr/share/sounds/alsa"));
    if !installed.is_empty() {
        return Ok(installed);
    }
    let extracted = dir.join("alsa-utils");
    let sounds = extracted.join("usr/share/sounds/alsa");
    if find(&sounds).is_empty() {
        let debs = dir.join("debs");
        fs::create_dir_all(&debs).map_err(|e| e.to_string())?;
        let status = Command::new("apt-get")
            .args(["download", "-q", "alsa-utils"])
            .current_dir(&debs)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("apt-get: {e}"))?;
        if !status.success() {
            return Err(format!("apt-get download alsa-utils: {status}"));
        }
        let deb = fs::read_dir(&debs)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .ok_or("no .deb downloaded")?;
        let status = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&extracted)
            .status()
            .map_err(|e| format!("dpkg-deb: {e}"))?;
        if !status.success() {
            return Err(format!("dpkg-deb -x: {status}"));
        }
    }
    let clips = find(&sounds);
    if clips.is_empty() {
        Err("the package has no voice clips".to_owned())
    } else {
        Ok(clips)
    }
}

/// The virtualenv's python with `pesq` and numpy installed.
fn pesq_python(root: &Path) -> Result<PathBuf> {
    let venv = root.join("target").join("xtask").join("pesq-venv");
    let python = venv.join("bin").join("python");
    if !python.exists() {
        eprintln!(
            "xtask: creating a virtualenv for pesq in {}",
            venv.display()
        );
        util::run_checked(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    let ready = Command::new(&python)
        .args(["-c", "import pesq, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        util::run_checked(
            Command::new(&python).args(["-m", "pip", "install", "-q", "numpy", "pesq"]),
        )?;
    }
    Ok(python)
}

/// Runs a command with `input` on stdin and stderr shown; its stdout, or an error unless it
/// exits with 0. `label` replaces the command line in messages.
fn stdout_with_input(cmd: &mut Command, input: &str, label: Option<String>) -> Result<String> {
    use std::io::Write as _;
    let shown = label.unwrap_or_else(|| util::show(cmd));
    eprintln!("xtask: $ {shown}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::new(format!("could not start `{shown}`: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(Error::new(format!("`{shown}` failed ({})", out.status)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn parse_scores(text: &str) -> Vec<Score> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let [name, case, ilink, c] = f.as_slice() else {
                return None;
            };
            Some(Score {
                name: (*name).to_owned(),
                case: (*case).to_owned(),
                ilink: ilink.parse().ok()?,
                c: c.parse().ok()?,
            })
        })
        .collect()
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

/// The markdown table and the threshold failures.
fn report(scores: &[Score], voices: &[(String, String)]) -> (String, Vec<String>) {
    let get = |name: &str, case: &str| {
        scores
            .iter()
            .find(|s| s.name == name && s.case == case)
            .map(|s| (s.ilink, s.c))
    };
    let cell = |v: Option<(f64, f64)>| match v {
        Some((i, c)) => format!("{i:.2} | {c:.2} | {:+.2}", i - c),
        None => "- | - | -".to_owned(),
    };
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| recording | source | ilink 24k | C 24k | Δ 24k | ilink 16k | C 16k (own rate) | Δ 16k |"
    );
    let _ = writeln!(t, "|---|---|---:|---:|---:|---:|---:|---:|");
    for (name, source) in voices {
        let _ = writeln!(
            t,
            "| {name} | {source} | {} | {} |",
            cell(get(name, "24k")),
            cell(get(name, "16k"))
        );
    }
    let of = |case: &str| -> Vec<&Score> { scores.iter().filter(|s| s.case == case).collect() };
    let (s24, s16) = (of("24k"), of("16k"));
    let means = |s: &[&Score]| (mean(s.iter().map(|x| x.ilink)), mean(s.iter().map(|x| x.c)));
    let (m24, m16) = (means(&s24), means(&s16));
    let _ = writeln!(
        t,
        "| **mean** | {} recordings | **{:.3}** | **{:.3}** | **{:+.3}** | **{:.3}** | **{:.3}** | **{:+.3}** |",
        s24.len(),
        m24.0,
        m24.1,
        m24.0 - m24.1,
        m16.0,
        m16.1,
        m16.0 - m16.1
    );

    let mut failures = Vec::new();
    if s24.is_empty() || s16.is_empty() {
        failures.push("no scores".to_owned());
    }
    if m24.0 < m24.1 - MAX_MEAN_DROP_24K || m24.0.is_nan() {
        failures.push(format!(
            "24 kHz: ilink's mean {:.3} is more than {MAX_MEAN_DROP_24K} below the C encoder's {:.3}",
            m24.0, m24.1
        ));
    }
    for s in &s24 {
        if s.ilink < s.c - MAX_FILE_DROP_24K {
            failures.push(format!(
                "24 kHz: {} scores {:.2}, more than {MAX_FILE_DROP_24K} below the C encoder's {:.2}",
                s.name, s.ilink, s.c
            ));
        }
    }
    if m16.0 < m16.1 || m16.0.is_nan() {
        failures.push(format!(
            "16 kHz: ilink's mean {:.3} is below the C encoder's at its own rate, {:.3}",
            m16.0, m16.1
        ));
    }
    let _ = writeln!(
        t,
        "\nThresholds (issue 16): at 24 kHz ilink's mean within {MAX_MEAN_DROP_24K} of the C \
         encoder's ({}) and no recording more than {MAX_FILE_DROP_24K} below ({}); at 16 kHz \
         ilink's mean no worse than the C encoder at its own rate ({}).",
        pass(m24.0 >= m24.1 - MAX_MEAN_DROP_24K),
        pass(s24.iter().all(|s| s.ilink >= s.c - MAX_FILE_DROP_24K)),
        pass(m16.0 >= m16.1)
    );
    (t, failures)
}

fn pass(ok: bool) -> &'static str {
    if ok { "met" } else { "**failed**" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(name: &str, case: &str, ilink: f64, c: f64) -> Score {
        Score {
            name: name.into(),
            case: case.into(),
            ilink,
            c,
        }
    }

    fn voices() -> Vec<(String, String)> {
        vec![("a".into(), "x".into()), ("b".into(), "y".into())]
    }

    #[test]
    fn parses_scorer_lines() {
        let s = parse_scores("a\t24k\t3.5\t3.25\nnoise\nb\t16k\t2\tx\n");
        assert_eq!(s, [score("a", "24k", 3.5, 3.25)]);
    }

    #[test]
    fn thresholds_pass_and_fail() {
        let good = [
            score("a", "24k", 3.0, 3.05),
            score("b", "24k", 3.5, 3.5),
            score("a", "16k", 3.0, 2.9),
            score("b", "16k", 3.0, 3.0),
        ];
        let (table, failures) = report(&good, &voices());
        assert!(failures.is_empty(), "{failures:?}");
        assert!(table.contains("| a | x | 3.00 | 3.05 | -0.05 | 3.00 | 2.90 | +0.10 |"));
        assert!(table.contains("**mean**"));

        // one file 0.4 worse (mean drop 0.2): two failures; 16 kHz worse: a third
        let bad = [
            score("a", "24k", 2.6, 3.0),
            score("b", "24k", 3.0, 3.0),
            score("a", "16k", 2.9, 3.0),
            score("b", "16k", 3.0, 3.0),
        ];
        let (_, failures) = report(&bad, &voices());
        assert_eq!(failures.len(), 3, "{failures:?}");
        assert!(failures[1].contains("a scores 2.60"));

        let (_, failures) = report(&[], &voices());
        assert!(!failures.is_empty());
    }
}
