//! Sample content for tests and benchmarks of long replies.

/// A reply of at least `chars` characters (Unicode scalar values) of the kind an AI agent
/// writes: Markdown headings, English and Chinese paragraphs, emoji sequences (skin tones,
/// a ZWJ family, a flag), fenced code blocks and tables. The same text for the same `chars`.
pub fn long_reply(chars: usize) -> String {
    let mut s = String::new();
    let mut i = 0usize;
    while s.chars().count() < chars {
        i += 1;
        s.push_str(&format!("## Part {i}\n\n"));
        s.push_str(&format!(
            "Paragraph {i} in English. It explains one more step of the plan, with numbers \
             like 3.14 and 2,718, and it ends here! Does it? Yes. "
        ));
        s.push_str("The quick brown fox jumps over the lazy dog again and again.\n\n");
        s.push_str(&format!(
            "第{i}段：这是一个用于测试长回复的中文段落，其中包含标点符号。我们希望每一个字都能\
             完整、按顺序、恰好一次地到达用户。长回复不应被服务器截断，也不应丢失。\n\n"
        ));
        s.push_str(&format!("Emoji {i}: 😀👍🏽👨\u{200D}👩\u{200D}👧🇨🇳✨ 🎉\n\n"));
        if i.is_multiple_of(3) {
            s.push_str(&format!(
                "```rust\nfn step_{i}(x: u32) -> u32 {{\n    // 计算\n    x * {i} + 1\n}}\n```\n\n"
            ));
        }
        if i.is_multiple_of(4) {
            s.push_str(&format!(
                "| 名称 | value {i} | 说明 |\n|---|---|---|\n| a | {i} | 第一行 |\n| b | {} | second row 😀 |\n\n",
                i * 2
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_replies_mix_scripts_and_blocks() {
        let t = super::long_reply(30_000);
        assert!(t.chars().count() >= 30_000);
        assert!(t.contains("```rust") && t.contains("|---|") && t.contains("👍🏽"));
        assert!(t.contains("第1段"));
        assert_eq!(t, super::long_reply(30_000));
    }
}
