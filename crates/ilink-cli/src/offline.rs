//! Commands that need no server: silk (decrypt is in `inbound`).

use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::error::{CliError, CliResult};
use crate::net::human_size;

/// `ilink silk …`.
#[derive(Debug, Subcommand)]
pub enum SilkCommand {
    /// SILK (Tencent or standard) to a WAV file.
    Decode {
        /// The SILK file.
        input: PathBuf,
        /// The WAV file to write.
        output: PathBuf,
        /// Output sample rate in Hz (4000 to 384000).
        #[arg(long, default_value_t = 24_000, value_parser = clap::value_parser!(u32).range(i64::from(ilink_silk::MIN_SAMPLE_RATE)..=i64::from(ilink_silk::MAX_SAMPLE_RATE)))]
        rate: u32,
    },
    /// Any audio file (WAV, MP3, Ogg, FLAC, AAC/M4A) to Tencent SILK at 24 kHz, as WeChat
    /// voice messages carry it.
    Encode {
        /// The audio file.
        input: PathBuf,
        /// The SILK file to write.
        output: PathBuf,
    },
}

/// The error for a file `silk decode` cannot decode, in the terms of what the file is.
fn not_silk(input: &Path, bytes: &[u8], e: &ilink_silk::SilkError) -> CliError {
    if !matches!(e, ilink_silk::SilkError::NotSilk) {
        return CliError::failure(format!("{} is not valid SILK: {e}", input.display()));
    }
    let what = if bytes.starts_with(b"RIFF") {
        Some("a WAV file")
    } else if bytes.starts_with(b"ID3") || bytes.starts_with(&[0xFF, 0xFB]) {
        Some("an MP3 file")
    } else if bytes.starts_with(b"OggS") {
        Some("an Ogg file")
    } else if bytes.starts_with(b"fLaC") {
        Some("a FLAC file")
    } else {
        None
    };
    match what {
        Some(kind) => CliError::failure(format!("{} is {kind}, not SILK voice", input.display()))
            .hint(format!(
                "to make a voice message from it, run `ilink silk encode {} OUT.silk`",
                input.display()
            )),
        None => CliError::failure(format!(
            "{} is not SILK voice: it does not start with #!SILK_V3",
            input.display()
        ))
        .hint(
            "give a SILK file (`ilink download` of a voice message, or `ilink silk encode`); \
             if it came from the CDN still encrypted, decrypt it first with `ilink decrypt`",
        ),
    }
}

/// `ilink silk decode|encode`.
pub async fn silk(cmd: SilkCommand) -> CliResult {
    tokio::task::spawn_blocking(move || silk_blocking(cmd))
        .await
        .map_err(|e| CliError::failure(format!("the voice codec failed: {e}")))?
}

fn silk_blocking(cmd: SilkCommand) -> CliResult {
    match cmd {
        SilkCommand::Decode {
            input,
            output,
            rate,
        } => {
            let silk = std::fs::read(&input)
                .map_err(|e| CliError::io(&format!("cannot read {}", input.display()), e))?;
            let options = ilink_silk::DecodeOptions::default().sample_rate(rate);
            let pcm =
                ilink_silk::decode_silk(&silk, options).map_err(|e| not_silk(&input, &silk, &e))?;
            let wav = pcm
                .to_wav()
                .map_err(|e| CliError::failure(format!("cannot make the WAV file: {e}")))?;
            std::fs::write(&output, &wav)
                .map_err(|e| CliError::io(&format!("cannot write {}", output.display()), e))?;
            println!(
                "decoded {} ms of voice ({} Hz mono) to {}",
                pcm.duration().as_millis(),
                pcm.sample_rate,
                output.display()
            );
        }
        SilkCommand::Encode { input, output } => {
            let voice =
                ilink_silk::audio_file_to_voice(&input, ilink_silk::EncodeOptions::default())
                    .map_err(|e| {
                        CliError::failure(format!(
                            "{} cannot be made into a voice message: {}",
                            input.display(),
                            crate::error::chain(&e)
                        ))
                    })?;
            std::fs::write(&output, &voice.silk)
                .map_err(|e| CliError::io(&format!("cannot write {}", output.display()), e))?;
            println!(
                "encoded {} ms of voice ({}) to {}",
                voice.meta.playtime_ms,
                human_size(voice.silk.len() as u64),
                output.display()
            );
        }
    }
    Ok(())
}
