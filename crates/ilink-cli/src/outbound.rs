//! The media half of `ilink send`: checked before anything is uploaded, then sent with a
//! progress bar.

use std::path::Path;

use ilink_client::cdn::MediaSource;
use ilink_client::{Account, MediaProblem, MediaType, SendError, SendErrorKind, SendOutcome};

use crate::error::{CliError, CliResult, Exit};
use crate::net::human_size;
use crate::progress;

/// What `ilink send` was asked to send.
pub struct MediaArgs<'a> {
    /// The recipient.
    pub to: &'a str,
    /// The file.
    pub path: &'a Path,
    /// The type asked for (`--image`, `--video`, `--file`, `--voice`).
    pub kind: MediaType,
    /// A caption, sent first as its own text message.
    pub caption: Option<&'a str>,
    /// `--or-file`: content that does not fit `kind` goes as a file, with a notice.
    pub or_file: bool,
}

/// The CLI error of media refused before upload: what is wrong with the file (exit 1, the
/// file is bad data; nothing was uploaded or sent) and what to do with a file sent as `kind`.
fn refused(e: &SendError, problem: MediaProblem, kind: MediaType) -> CliError {
    let voice = kind == MediaType::Voice;
    let hint = match problem {
        MediaProblem::Empty => "choose a file with content",
        MediaProblem::TooLarge => "compress or split it, or send a link to it instead",
        MediaProblem::WrongFormat | MediaProblem::Unreadable if voice => {
            "convert it to WAV or MP3 first, or send it as a document with --file"
        }
        MediaProblem::WrongFormat => {
            "send it as a document with --file, or add --or-file to send it as a file when \
             its content does not fit"
        }
        _ => "check that the file exists and can be read",
    };
    CliError::new(Exit::Failure, format!("not sent: {e}")).hint(hint)
}

/// A send error of a media send as `kind` as a CLI error: media refused before upload reads
/// as such; anything else as every other send error.
pub fn send_error(e: SendError, kind: MediaType) -> CliError {
    match e.kind() {
        SendErrorKind::BadMedia(problem) => refused(&e, problem, kind),
        _ => CliError::from(e),
    }
}

/// `ilink send --image|--video|--file|--voice PATH [--caption TEXT] [--or-file]`: checks the
/// file (readable, not empty, within the size limit of its type, content of that type),
/// then sends the caption and the media. Returns the outcomes, each with what it was.
pub async fn send_media(
    account: &Account,
    args: MediaArgs<'_>,
) -> CliResult<Vec<(SendOutcome, &'static str)>> {
    let source = MediaSource::file(args.path);
    let checked = match account.check_media(&source, Some(args.kind)).await {
        Ok(c) => c,
        Err(e)
            if args.or_file && e.kind() == SendErrorKind::BadMedia(MediaProblem::WrongFormat) =>
        {
            eprintln!("ilink: notice: {e}; sending it as a file instead (--or-file)");
            account
                .check_media(&source, Some(MediaType::File))
                .await
                .map_err(|e| send_error(e, MediaType::File))?
        }
        Err(e) => return Err(send_error(e, args.kind)),
    };
    let kind = checked.media_type;
    let label = match kind {
        MediaType::Image => "image",
        MediaType::Video => "video",
        MediaType::Voice => "voice",
        _ => "file",
    };
    let size = checked.len;
    let label_text = format!("uploading {} ({})", args.path.display(), human_size(size));
    let mut send = account.media(args.to, source).media_type(kind);
    if let Some(c) = args.caption {
        send = send.caption(c);
    }
    let bar = if kind == MediaType::Voice {
        // Most of a voice send is the conversion to SILK, which reports no progress; the
        // upload after it is small.
        progress::spinner(size, &label_text)
    } else {
        // The upload is the ciphertext: AES-128-ECB with PKCS#7 padding (next multiple of
        // 16 bytes), streamed from the file and reported as it goes.
        let bar = progress::bytes_bar(Some((size / 16 + 1) * 16), &label_text);
        send = send.progress(progress::callback(&bar));
        bar
    };
    let result = send.send().await;
    bar.finish_and_clear();
    let outcomes = result.map_err(|e| send_error(e, kind))?;
    // The caption's chunks come first, the media last.
    let last = outcomes.len().saturating_sub(1);
    Ok(outcomes
        .into_iter()
        .enumerate()
        .map(|(i, o)| (o, if i == last { label } else { "caption" }))
        .collect())
}
