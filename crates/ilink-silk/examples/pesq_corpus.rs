//! The encoding half of `cargo xtask pesq` (the PESQ comparison of ilink's encoder with the
//! SILK SDK's C encoder; needs the `c-reference` feature).
//!
//! ```text
//! cargo run --release -p ilink-silk --features c-reference --example pesq_corpus -- LIST OUT_DIR
//! ```
//!
//! `LIST` has one recording per line: `name \t audio file [\t audio file...]` (several files
//! are joined with 200 ms of silence between them). For each recording this makes two inputs
//! from the source file(s) with ilink's resampler, at 24 kHz and at 16 kHz, and encodes:
//!
//! * `24k`: the 24 kHz recording with ilink's public encoder (`encode_pcm(.., 24000, default)`:
//!   24 kbit/s, complexity 2) and with the C encoder at the same settings
//!   (`reference::EncoderSettings::default()`: 24 kHz in, 24 kHz internal, 24 kbit/s,
//!   complexity 2);
//! * `16k`: the 16 kHz recording with ilink's public encoder (`encode_pcm(.., 16000, default)`)
//!   and with the C encoder at its own rate (API and highest internal rate 16 kHz, 24 kbit/s,
//!   complexity 2).
//!
//! Every stream is decoded by the C reference decoder at 16 kHz (the rate of wideband PESQ,
//! ITU-T P.862.2) and written as a 16-bit WAV, cut or padded to the reference's length, next
//! to the 16 kHz reference (for `24k`, the 24 kHz input resampled to 16 kHz). Prints one line
//! per comparison: `name \t case \t reference.wav \t ilink.wav \t c.wav \t ilink bytes \t
//! c bytes`.

use std::path::Path;
use std::process::ExitCode;

use ilink_silk::reference::{self, EncoderSettings};
use ilink_silk::{DecodeOptions, EncodeOptions, Pcm, SilkError, decode_audio, decode_audio_file};

/// The rate PESQ scores at (wideband, P.862.2).
const PESQ_RATE: u32 = 16_000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [list, out] = args.as_slice() else {
        eprintln!("usage: pesq_corpus LIST OUT_DIR");
        return ExitCode::from(2);
    };
    match run(Path::new(list), Path::new(out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pesq_corpus: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(list: &Path, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(out)?;
    let text = std::fs::read_to_string(list)?;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut fields = line.split('\t');
        let name = fields.next().ok_or("empty line")?;
        let files: Vec<&str> = fields.collect();
        if files.is_empty() {
            return Err(format!("{name}: no audio file").into());
        }
        let pcm24 = load(&files, 24_000)?;
        let pcm16 = load(&files, 16_000)?;

        let ref24 = resample(&pcm24, 24_000, PESQ_RATE)?;
        let ours = ilink_silk::encode_pcm(&pcm24, 24_000, EncodeOptions::default())?.silk;
        let c = reference::encode(&pcm24, EncoderSettings::default())?;
        emit(out, name, "24k", &ref24, &ours, &c)?;

        let ours = ilink_silk::encode_pcm(&pcm16, 16_000, EncodeOptions::default())?.silk;
        let settings = EncoderSettings::default()
            .api_rate(16_000)
            .max_internal_rate(16_000);
        let c = reference::encode(&pcm16, settings)?;
        emit(out, name, "16k", &pcm16, &ours, &c)?;
    }
    Ok(())
}

/// The files, mono at `rate`, joined with 200 ms of silence.
fn load(files: &[&str], rate: u32) -> Result<Vec<i16>, SilkError> {
    let mut pcm = Vec::new();
    for (i, file) in files.iter().enumerate() {
        if i > 0 {
            pcm.extend(std::iter::repeat_n(0i16, rate as usize / 5));
        }
        let options = DecodeOptions::default().sample_rate(rate);
        pcm.extend(decode_audio_file(file, options)?.samples);
    }
    Ok(pcm)
}

fn resample(pcm: &[i16], from: u32, to: u32) -> Result<Vec<i16>, SilkError> {
    let wav = Pcm {
        samples: pcm.to_vec(),
        sample_rate: from,
    }
    .to_wav()?;
    Ok(decode_audio(&wav, DecodeOptions::default().sample_rate(to))?.samples)
}

/// Decodes both streams with the C decoder at 16 kHz and writes the three WAVs.
fn emit(
    out: &Path,
    name: &str,
    case: &str,
    reference_pcm: &[i16],
    ours: &[u8],
    c: &[u8],
) -> Result<(), Box<dyn std::error::Error>> {
    let write = |suffix: &str, samples: Vec<i16>| -> Result<String, Box<dyn std::error::Error>> {
        let path = out.join(format!("{name}.{case}.{suffix}.wav"));
        let wav = Pcm {
            samples,
            sample_rate: PESQ_RATE,
        }
        .to_wav()?;
        std::fs::write(&path, wav)?;
        Ok(path.display().to_string())
    };
    let decoded = |silk: &[u8]| -> Result<Vec<i16>, SilkError> {
        let mut pcm = reference::decode(silk, PESQ_RATE)?;
        pcm.resize(reference_pcm.len(), 0);
        Ok(pcm)
    };
    let r = write("ref", reference_pcm.to_vec())?;
    let o = write("ilink", decoded(ours)?)?;
    let cc = write("c", decoded(c)?)?;
    println!(
        "{name}\t{case}\t{r}\t{o}\t{cc}\t{}\t{}",
        ours.len(),
        c.len()
    );
    Ok(())
}
