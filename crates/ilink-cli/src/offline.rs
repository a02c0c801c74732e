//! Commands that need no server: decrypt, silk.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use ilink_crypto::{Decryptor, MediaKey};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::error::{CliError, CliResult};
use crate::net::human_size;
use crate::progress;

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

/// `ilink decrypt`: streamed, in constant memory.
pub async fn decrypt(key: &str, input: &Path, output: &Path) -> CliResult {
    let key = MediaKey::parse(key).map_err(|e| {
        CliError::usage(format!("--key: {e}"))
            .hint("give 32 hex digits, or base64 of the raw 16 bytes or of the 32 hex digits")
    })?;
    let mut src = tokio::fs::File::open(input)
        .await
        .map_err(|e| CliError::io(&format!("cannot open {}", input.display()), e))?;
    let total = src.metadata().await.map(|m| m.len()).ok();
    let tmp = output.with_extension("part");
    let mut dst = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| CliError::io(&format!("cannot create {}", tmp.display()), e))?;
    let bar = progress::bytes_bar(total, "decrypting");
    let mut dec = Decryptor::new(&key);
    let mut buf = vec![0u8; 256 * 1024];
    let mut out = Vec::with_capacity(buf.len() + 16);
    let mut done = 0u64;
    let result: CliResult<u64> = async {
        loop {
            let n = src
                .read(&mut buf)
                .await
                .map_err(|e| CliError::io(&format!("reading {}", input.display()), e))?;
            if n == 0 {
                break;
            }
            out.clear();
            dec.update(buf.get(..n).unwrap_or_default(), &mut out);
            dst.write_all(&out)
                .await
                .map_err(|e| CliError::io(&format!("writing {}", tmp.display()), e))?;
            done += n as u64;
            bar.set_position(done);
        }
        out.clear();
        dec.finish(&mut out).map_err(|e| {
            CliError::failure(format!(
                "{} does not decrypt with this key: {e}",
                input.display()
            ))
            .hint("check the key (images: image_item.aeskey; others: media.aes_key)")
        })?;
        dst.write_all(&out)
            .await
            .map_err(|e| CliError::io(&format!("writing {}", tmp.display()), e))?;
        dst.flush()
            .await
            .map_err(|e| CliError::io(&format!("writing {}", tmp.display()), e))?;
        Ok(dst.metadata().await.map(|m| m.len()).unwrap_or(0))
    }
    .await;
    bar.finish_and_clear();
    match result {
        Ok(len) => {
            tokio::fs::rename(&tmp, output)
                .await
                .map_err(|e| CliError::io(&format!("cannot write {}", output.display()), e))?;
            println!("decrypted {} to {}", human_size(len), output.display());
            Ok(())
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            Err(e)
        }
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
