//! Commands that need no server: silk (decrypt is in `inbound`).

use std::path::PathBuf;

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
        /// Output sample rate in Hz.
        #[arg(long, default_value_t = 24_000)]
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
            let pcm = ilink_silk::decode_silk(&silk, options).map_err(|e| {
                CliError::failure(format!("{} is not valid SILK: {e}", input.display()))
            })?;
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
                            "{} cannot be made into a voice message: {e}",
                            input.display()
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
