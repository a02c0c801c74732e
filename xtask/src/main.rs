//! `cargo xtask`: project automation (fuzz, bench, ci).
#![forbid(unsafe_code)]

fn main() {
    eprintln!("usage: cargo xtask <fuzz|bench|ci>  (not built yet)");
    std::process::exit(2);
}
