//! ilink-client's outbound text path: the Markdown filter of the official client and the
//! chunker (1800 UTF-16 units by default), on a long LLM-style reply (~64 KiB: prose,
//! CJK, emoji, headings, lists, code fences, tables, images) and on a short chat reply.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ilink_client::{DEFAULT_CHUNK_LIMIT, chunk_text, filter_markdown};

const SECTION: &str = "\
## Summary

The **deployment** finished. Here is what changed, and *why* it matters. See the notes below!
Latency went down by 12% on the p99; throughput is unchanged. Next steps follow.

##### Details

- 修复了消息发送失败的问题。新增了*斜体*说明，以及更详细的日志。
- Emoji survive: 👍🏽 👨‍👩‍👧 🎉 and so do CJK punctuation marks：「」、。
- An image that the filter removes: ![diagram](https://example.com/d.png) and text after it.

| metric | before | after |
|---|---:|---:|
| p50 | 12 ms | 10 ms |
| p99 | 80 ms | 70 ms |

```rust
fn main() {
    println!(\"code is kept *as is*, even **markers**\");
}
```

---

";

fn long_reply() -> String {
    let mut s = String::new();
    while s.len() < 64 * 1024 {
        s.push_str(SECTION);
    }
    s
}

fn bench_text(c: &mut Criterion) {
    let long = long_reply();
    let short = "**Echo**: x ![img](http://x/y.png) *斜体* and a short answer.".to_owned();
    // The long reply really is cut into several chunks.
    assert!(chunk_text(&filter_markdown(&long), DEFAULT_CHUNK_LIMIT).len() > 10);

    let mut group = c.benchmark_group("text_outbound");
    for (name, text) in [("long_64KiB", &long), ("short", &short)] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::new("filter_markdown", name), text, |b, t| {
            b.iter(|| filter_markdown(black_box(t)))
        });
        group.bench_with_input(
            BenchmarkId::new("chunk_text_default", name),
            text,
            |b, t| b.iter(|| chunk_text(black_box(t), DEFAULT_CHUNK_LIMIT)),
        );
        group.bench_with_input(BenchmarkId::new("filter_then_chunk", name), text, |b, t| {
            b.iter(|| chunk_text(&filter_markdown(black_box(t)), DEFAULT_CHUNK_LIMIT))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_text);
criterion_main!(benches);
