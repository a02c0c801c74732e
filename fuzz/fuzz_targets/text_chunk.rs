//! The outbound text chunker and Markdown filter of ilink-client (docs/protocol.md §9), fed with
//! arbitrary text (a bot echoes what users send it).
//!
//! Input: two bytes choosing the limit (1..=4200 UTF-16 units), then the text.
//! Properties of `chunk_text`, as documented: chunks are never empty; each is at most `limit`
//! UTF-16 code units (a single grapheme wider than the limit excepted); in order, they are
//! pieces of the input and what lies between them (and around them) is only whitespace, so
//! the chunks concatenate back to the input modulo whitespace (the chunker keeps the whitespace
//! at a cut; only runs of it about as long as the limit may be dropped).
//! `filter_markdown` never panics and only removes text. The client's pipeline (filter, then
//! chunk at the default limit) holds the same properties.
#![no_main]

use ilink_client::{DEFAULT_CHUNK_LIMIT, chunk_text, filter_markdown};
use libfuzzer_sys::fuzz_target;
use unicode_segmentation::UnicodeSegmentation as _;

fn check_chunks(text: &str, limit: usize) {
    let chunks = chunk_text(text, limit);
    let limit = limit.max(1);
    let mut rest = text;
    for chunk in &chunks {
        assert!(!chunk.trim().is_empty(), "empty or blank chunk");
        let units: usize = chunk.chars().map(char::len_utf16).sum();
        assert!(
            units <= limit || chunk.graphemes(true).count() == 1,
            "chunk of {units} units over the limit {limit}"
        );
        // Skip whitespace until the chunk starts.
        let mut found = None;
        for (i, c) in rest.char_indices() {
            if rest[i..].starts_with(chunk.as_str()) {
                found = Some(i);
                break;
            }
            if !c.is_whitespace() {
                break;
            }
        }
        if found.is_none() && rest.starts_with(chunk.as_str()) {
            found = Some(0);
        }
        let at = found.unwrap_or_else(|| {
            panic!("chunk {chunk:?} is not the next non-whitespace text of the input")
        });
        rest = &rest[at + chunk.len()..];
    }
    assert!(rest.trim().is_empty(), "text after the last chunk was lost: {rest:?}");
    if text.trim().is_empty() {
        assert!(chunks.is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((sel, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let limit = usize::from(u16::from_le_bytes(*sel)) % 4200 + 1;
    let text = String::from_utf8_lossy(rest);
    check_chunks(&text, limit);

    let filtered = filter_markdown(&text);
    assert!(filtered.len() <= text.len(), "the Markdown filter added text");
    check_chunks(&filtered, DEFAULT_CHUNK_LIMIT);
});
