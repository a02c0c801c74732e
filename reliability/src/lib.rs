#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod conversation;
pub mod files;
pub mod raw_server;
pub mod rng;

pub use conversation::{
    Outcome, ReplyRecord, Report, Scenario, fast_config, fast_config_for, sim_config,
};
pub use rng::SplitMix64;

/// The resident set size of this process in KiB, from `/proc/self/status` (`None` where there
/// is no procfs).
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
