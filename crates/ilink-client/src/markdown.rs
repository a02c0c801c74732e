//! The official client's outbound Markdown filter (docs/protocol.md §9, client 2.1.3+).
//!
//! Written by hand: it reproduces one client's specific, partial rules, which no Markdown crate
//! implements.
//!
//! - Kept unchanged: code fences (and everything inside), inline code, tables, horizontal rules,
//!   `**bold**`, and `*italic*` / `_italic_` / `***x***` / `___x___` around non-CJK text.
//! - Markers removed, content kept: those italic and bold-italic markers when they wrap CJK text,
//!   and `#####` / `######` heading prefixes.
//! - Removed entirely: images `![alt](url)`.

/// Apply the official client's Markdown filter to outgoing text.
///
/// ```
/// use ilink_client::filter_markdown;
/// assert_eq!(
///     filter_markdown("**Echo**: x ![img](http://x/y.png) *斜体*"),
///     "**Echo**: x  斜体"
/// );
/// ```
pub fn filter_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut fence: Option<(char, usize)> = None;
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let trimmed = line.trim_start();
        if let Some((ch, n)) = fence {
            out.push_str(line);
            if fence_marker(trimmed).is_some_and(|(c, m)| c == ch && m >= n)
                && trimmed.trim_start_matches(ch).trim().is_empty()
            {
                fence = None;
            }
            continue;
        }
        if let Some(marker) = fence_marker(trimmed) {
            fence = Some(marker);
            out.push_str(line);
            continue;
        }
        if is_table_row(trimmed) || is_horizontal_rule(trimmed) {
            out.push_str(line);
            continue;
        }
        let body = strip_small_heading(line);
        filter_inline(body, &mut out);
    }
    out
}

/// ```` ``` ```` or `~~~` (3 or more) opening a fenced code block.
fn fence_marker(trimmed: &str) -> Option<(char, usize)> {
    let ch = trimmed.chars().next()?;
    if ch != '`' && ch != '~' {
        return None;
    }
    let n = trimmed.chars().take_while(|&c| c == ch).count();
    (n >= 3).then_some((ch, n))
}

fn is_table_row(trimmed: &str) -> bool {
    trimmed.starts_with('|')
}

fn is_horizontal_rule(trimmed: &str) -> bool {
    let Some(ch) = trimmed.chars().next() else {
        return false;
    };
    if !matches!(ch, '-' | '*' | '_') {
        return false;
    }
    let mut count = 0;
    for c in trimmed.chars() {
        if c == ch {
            count += 1;
        } else if c != ' ' && c != '\t' {
            return false;
        }
    }
    count >= 3
}

/// `##### x` and `###### x` lose their prefix; other headings are kept.
fn strip_small_heading(line: &str) -> &str {
    let trimmed = line.trim_start_matches(' ');
    let n = trimmed.chars().take_while(|&c| c == '#').count();
    if (n == 5 || n == 6) && line.len() - trimmed.len() <= 3 {
        let rest = &trimmed[n..];
        if rest.is_empty() {
            return rest;
        }
        if rest.starts_with([' ', '\t']) {
            return rest.trim_start_matches([' ', '\t']);
        }
    }
    line
}

/// True for CJK ideographs, kana, hangul, and CJK / full-width punctuation.
pub(crate) fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{1100}'..='\u{11FF}'
        | '\u{2E80}'..='\u{2FDF}'
        | '\u{3000}'..='\u{30FF}'
        | '\u{3100}'..='\u{31FF}'
        | '\u{3200}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{A960}'..='\u{A97F}'
        | '\u{AC00}'..='\u{D7AF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{FE30}'..='\u{FE4F}'
        | '\u{FF00}'..='\u{FFEF}'
        | '\u{20000}'..='\u{2FA1F}')
}

fn filter_inline(line: &str, out: &mut String) {
    let mut i = 0;
    while i < line.len() {
        let rest = &line[i..];
        // Inline code: copy through to the matching run of backticks.
        if rest.starts_with('`') {
            let n = rest.chars().take_while(|&c| c == '`').count();
            let ticks = &rest[..n];
            if let Some(end) = rest[n..].find(ticks) {
                let stop = n + end + n;
                out.push_str(&rest[..stop]);
                i += stop;
                continue;
            }
            out.push_str(ticks);
            i += n;
            continue;
        }
        // Image: removed entirely.
        if rest.starts_with("![")
            && let Some(len) = image_len(rest)
        {
            i += len;
            continue;
        }
        // Emphasis with `*` or `_`: runs of 1 or 3 markers; 2 (bold) is kept as is.
        if rest.starts_with(['*', '_']) {
            let ch = rest.chars().next().unwrap_or('*');
            let n = rest.chars().take_while(|&c| c == ch).count();
            let prev = line[..i].chars().next_back();
            let left_ok = ch == '*' || !prev.is_some_and(char::is_alphanumeric);
            if (n == 1 || n == 3) && left_ok {
                let marker = &rest[..n];
                if let Some((content, total)) = emphasis_span(rest, marker, ch)
                    && content.chars().any(is_cjk)
                {
                    filter_inline(content, out);
                    i += total;
                    continue;
                }
            }
            out.push_str(&rest[..n]);
            i += n;
            continue;
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
}

/// The length of `![alt](url)` at the start of `s`, if it is one.
fn image_len(s: &str) -> Option<usize> {
    let close = s[2..].find(']')? + 2;
    let after = &s[close + 1..];
    if !after.starts_with('(') {
        return None;
    }
    let paren = after.find(')')?;
    Some(close + 1 + paren + 1)
}

/// For `s` starting with `marker`, the emphasized content and the total length through the
/// closing marker: a closing run of exactly the same length, content non-empty and not starting
/// or ending with whitespace.
fn emphasis_span<'a>(s: &'a str, marker: &str, ch: char) -> Option<(&'a str, usize)> {
    let n = marker.len();
    let body = &s[n..];
    if body.starts_with(char::is_whitespace) || body.is_empty() {
        return None;
    }
    let mut search = 0;
    while let Some(pos) = body[search..].find(marker) {
        let at = search + pos;
        let run = body[at..].chars().take_while(|&c| c == ch).count();
        let content = &body[..at];
        let next = body[at + run..].chars().next();
        let right_ok = ch == '*' || !next.is_some_and(char::is_alphanumeric);
        if run == n && !content.is_empty() && !content.ends_with(char::is_whitespace) && right_ok {
            return Some((content, n + at + n));
        }
        search = at + run;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_example() {
        // docs/protocol.md §9 [wire].
        assert_eq!(
            filter_markdown("**Echo**: x ![img](http://x/y.png) *斜体*"),
            "**Echo**: x  斜体"
        );
    }

    #[test]
    fn italic_and_bold_italic_around_latin_kept() {
        for s in [
            "*italic*",
            "_italic_",
            "***x***",
            "___x___",
            "**bold**",
            "**粗体**",
        ] {
            assert_eq!(filter_markdown(s), s);
        }
    }

    #[test]
    fn italic_and_bold_italic_around_cjk_lose_markers() {
        assert_eq!(filter_markdown("_斜体_ and ***重要***"), "斜体 and 重要");
        assert_eq!(filter_markdown("a *混合 mixed* b"), "a 混合 mixed b");
    }

    #[test]
    fn headings() {
        assert_eq!(filter_markdown("##### 标题"), "标题");
        assert_eq!(filter_markdown("###### Title"), "Title");
        assert_eq!(filter_markdown("# Big"), "# Big");
        assert_eq!(filter_markdown("#### Four"), "#### Four");
        assert_eq!(filter_markdown("####### seven"), "####### seven");
    }

    #[test]
    fn code_is_untouched() {
        let s = "```\n*斜体* ![x](y)\n##### h\n```\nafter *斜体*";
        assert_eq!(
            filter_markdown(s),
            "```\n*斜体* ![x](y)\n##### h\n```\nafter 斜体"
        );
        assert_eq!(filter_markdown("`*斜体*` *斜体*"), "`*斜体*` 斜体");
    }

    #[test]
    fn tables_and_rules_kept() {
        let s = "| a | *斜体* |\n|---|---|\n***\n---";
        assert_eq!(filter_markdown(s), s);
    }

    #[test]
    fn snake_case_and_lone_markers_are_not_emphasis() {
        assert_eq!(
            filter_markdown("call my_func_name now"),
            "call my_func_name now"
        );
        assert_eq!(filter_markdown("2 * 3 = 6"), "2 * 3 = 6");
        assert_eq!(filter_markdown("unclosed *斜体"), "unclosed *斜体");
        assert_eq!(filter_markdown("![broken"), "![broken");
    }

    #[test]
    fn images_removed() {
        assert_eq!(filter_markdown("see ![a](b.png)!"), "see !");
        assert_eq!(filter_markdown("[link](http://x)"), "[link](http://x)");
    }
}
