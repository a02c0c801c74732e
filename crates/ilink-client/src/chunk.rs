//! Splitting long text into messages the server accepts.
//!
//! The official client declares a text chunk limit of 4000 to its host, which splits long replies
//! before they reach the plugin (PROTOCOL.md §9). Its host measures text in JavaScript string
//! units (UTF-16 code units), so this chunker does too: an emoji outside the BMP counts as 2.
//! Written by hand because the boundary order (paragraph, line, sentence, word, character) and
//! the UTF-16 measure are specific to this protocol.

/// The default chunk limit, in UTF-16 code units (PROTOCOL.md §9).
pub const DEFAULT_CHUNK_LIMIT: usize = ilink_proto::consts::TEXT_CHUNK_LIMIT;

/// Split `text` into chunks of at most `limit` UTF-16 code units each (a `limit` of 0 is taken
/// as 1).
///
/// Each cut is made at the last boundary inside the allowed window, trying in order: a paragraph
/// break (blank line), a line break, the end of a sentence (`. ! ?` followed by a space, or
/// `。！？`), a space, and finally any character boundary (never inside a character, and never
/// between a character and a following zero-width joiner, variation selector or skin-tone
/// modifier, when that can be avoided). A boundary is only used if it lies in the second half of
/// the window, so chunks stay close to the limit. The whitespace at a cut is dropped; nothing
/// else is. Empty input yields no chunks; chunks are never empty.
///
/// ```
/// use ilink_client::chunk_text;
/// let chunks = chunk_text("first paragraph.\n\nsecond one", 20);
/// assert_eq!(chunks, vec!["first paragraph.", "second one"]);
/// assert_eq!(chunk_text("😀😀😀", 4), vec!["😀😀", "😀"]);
/// ```
pub fn chunk_text(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(1);
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        if rest.trim().is_empty() {
            break;
        }
        // Byte index where the window of `limit` UTF-16 units ends.
        let mut units = 0usize;
        let mut window_end = rest.len();
        for (i, c) in rest.char_indices() {
            if units + c.len_utf16() > limit {
                window_end = i;
                break;
            }
            units += c.len_utf16();
        }
        if window_end == rest.len() {
            push_trimmed(&mut out, rest);
            break;
        }
        let (cut, resume) = find_cut(rest, window_end);
        push_trimmed(&mut out, &rest[..cut]);
        rest = &rest[resume..];
    }
    out
}

fn push_trimmed(out: &mut Vec<String>, piece: &str) {
    let piece = piece.trim_end();
    let piece = piece.trim_start_matches(['\n', '\r']);
    if !piece.trim().is_empty() {
        out.push(piece.to_owned());
    }
}

/// The cut position (end of this chunk) and the resume position (start of the next) for a
/// window `rest[..window_end]`, `window_end < rest.len()`.
fn find_cut(rest: &str, window_end: usize) -> (usize, usize) {
    let window = &rest[..window_end];
    let min = window_end / 2;
    // 1. paragraph break
    if let Some(p) = window.rfind("\n\n")
        && p >= min
        && p > 0
    {
        return (p, p + 2);
    }
    // 2. line break
    if let Some(p) = window.rfind('\n')
        && p >= min
        && p > 0
    {
        return (p, p + 1);
    }
    // 3. sentence end: include the terminator in this chunk.
    let mut best: Option<usize> = None;
    for (i, c) in window.char_indices() {
        let after = i + c.len_utf8();
        let is_end = match c {
            '。' | '！' | '？' | '…' => true,
            '.' | '!' | '?' => rest[after..].starts_with([' ', '\t']),
            _ => false,
        };
        if is_end && after >= min && after <= window_end {
            best = Some(after);
        }
    }
    if let Some(p) = best {
        let skip = rest[p..].len() - rest[p..].trim_start_matches([' ', '\t']).len();
        return (p, p + skip);
    }
    // 4. word boundary (a space or tab; the whitespace is dropped)
    if let Some(p) = window.rfind([' ', '\t'])
        && p >= min
        && p > 0
    {
        return (p, p + 1);
    }
    // 5. hard cut at a character boundary, not splitting joiner sequences when avoidable.
    let mut cut = window_end;
    while cut > 0 {
        let next = rest[cut..].chars().next();
        let prev = rest[..cut].chars().next_back();
        let glued = next.is_some_and(is_joiner_like) || prev == Some('\u{200D}');
        if !glued {
            break;
        }
        cut = rest[..cut].char_indices().next_back().map_or(0, |(i, _)| i);
    }
    if cut == 0 {
        cut = window_end.max(rest.chars().next().map_or(0, char::len_utf8));
    }
    (cut, cut)
}

fn is_joiner_like(c: char) -> bool {
    matches!(c,
        '\u{200D}'                      // zero-width joiner
        | '\u{FE00}'..='\u{FE0F}'       // variation selectors
        | '\u{1F3FB}'..='\u{1F3FF}'     // skin-tone modifiers
        | '\u{0300}'..='\u{036F}'       // combining diacritical marks
        | '\u{20E3}'                    // combining enclosing keycap
        | '\u{E0020}'..='\u{E007F}') // tag characters (flag sequences)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn units(s: &str) -> usize {
        s.encode_utf16().count()
    }

    #[test]
    fn short_text_is_one_chunk() {
        assert_eq!(chunk_text("hello", 4000), vec!["hello"]);
        assert!(chunk_text("", 10).is_empty());
        assert!(chunk_text("  \n\n ", 10).is_empty());
    }

    #[test]
    fn prefers_paragraphs_then_lines() {
        let text = "aaaa aaaa\n\nbbbb\nbbbb cccc";
        assert_eq!(chunk_text(text, 15), vec!["aaaa aaaa", "bbbb\nbbbb cccc"]);
        let text = "aaaa aaaa\nbbbb bbbb cc";
        assert_eq!(chunk_text(text, 15), vec!["aaaa aaaa", "bbbb bbbb cc"]);
    }

    #[test]
    fn sentences_then_words() {
        let text = "One two three. Four five six seven.";
        assert_eq!(
            chunk_text(text, 20),
            vec!["One two three.", "Four five six seven."]
        );
        assert_eq!(
            chunk_text("alpha beta gamma delta", 12),
            vec!["alpha beta", "gamma delta"]
        );
        // A dot inside a word ("3.14") is not a sentence end.
        assert_eq!(
            chunk_text("pi is 3.14159 ok", 10),
            vec!["pi is", "3.14159 ok"]
        );
    }

    #[test]
    fn cjk_sentences_and_hard_cuts() {
        let text = "你好世界。今天天气很好。我们去公园吧";
        let chunks = chunk_text(text, 8);
        assert_eq!(chunks, vec!["你好世界。", "今天天气很好。", "我们去公园吧"]);
        let text = "一二三四五六七八九十";
        assert_eq!(chunk_text(text, 4), vec!["一二三四", "五六七八", "九十"]);
    }

    #[test]
    fn emoji_never_split() {
        // Family emoji: man ZWJ woman ZWJ girl, 8 UTF-16 units.
        let fam = "👨\u{200D}👩\u{200D}👧";
        let text = format!("{fam}{fam}");
        let chunks = chunk_text(&text, 10);
        assert_eq!(chunks, vec![fam.to_owned(), fam.to_owned()]);
        // Thumbs up with a skin tone stays together.
        let t = "👍🏽";
        assert_eq!(chunk_text(&format!("a{t}"), 4), vec!["a", t]);
    }

    #[test]
    fn limit_zero_still_progresses() {
        assert_eq!(chunk_text("ab", 0), vec!["a", "b"]);
    }

    #[test]
    fn default_limit_is_4000() {
        assert_eq!(DEFAULT_CHUNK_LIMIT, 4000);
        let long = "word ".repeat(2000);
        let chunks = chunk_text(&long, DEFAULT_CHUNK_LIMIT);
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| units(c) <= 4000));
    }

    proptest! {
        #[test]
        fn chunks_fit_and_lose_nothing(
            text in "[a-z \\n。😀👍🏽\u{200D}一-龥.!?]{0,300}",
            limit in 1usize..60,
        ) {
            let chunks = chunk_text(&text, limit);
            for c in &chunks {
                prop_assert!(!c.is_empty());
                // A glued sequence longer than the limit may exceed it only when it cannot
                // be cut; with these inputs every chunk fits or is one hard-cut unit.
                prop_assert!(units(c) <= limit.max(2), "{c:?} > {limit}");
            }
            let strip = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
            prop_assert_eq!(strip(&chunks.concat()), strip(&text));
        }
    }
}
