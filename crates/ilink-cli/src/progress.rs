//! Progress bars (indicatif) for transfers that take more than a moment.

use std::sync::Arc;
use std::time::Duration;

use ilink_client::cdn::{Progress, ProgressFn};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Transfers smaller than this finish in a moment and get no bar.
pub const BAR_THRESHOLD: u64 = 512 * 1024;

/// A byte progress bar on stderr for a transfer of `total` bytes, hidden for small
/// transfers and when stderr is not a terminal.
pub fn bytes_bar(total: Option<u64>, label: &str) -> ProgressBar {
    if total.is_some_and(|t| t < BAR_THRESHOLD) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let template = if total.is_some() {
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
    } else {
        "{msg} {spinner} {bytes} {bytes_per_sec}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_owned());
    bar
}

/// A spinner for work whose progress cannot be measured (a voice file's conversion),
/// hidden for small sizes and when stderr is not a terminal.
pub fn spinner(size: u64, label: &str) -> ProgressBar {
    if size < BAR_THRESHOLD {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(label.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A CDN progress callback that drives `bar`.
pub fn callback(bar: &ProgressBar) -> ProgressFn {
    let bar = bar.clone();
    Arc::new(move |p: Progress| {
        if let Some(t) = p.total {
            bar.set_length(t);
        }
        bar.set_position(p.done);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_transfers_get_no_bar() {
        assert!(bytes_bar(Some(10), "x").is_hidden());
        assert!(spinner(10, "x").is_hidden());
    }
}
