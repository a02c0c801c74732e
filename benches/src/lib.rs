//! Criterion benchmarks of ilink's hot paths live in `benches/`; run them with `cargo xtask bench`.
#![forbid(unsafe_code)]
