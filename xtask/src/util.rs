//! Small helpers shared by the xtask commands: errors, paths, processes, flag parsing.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What went wrong in an xtask command.
#[derive(Debug)]
pub struct Error {
    message: String,
    usage: bool,
}

impl Error {
    /// A failure of the task itself (a build failed, a fuzzer found a crash...).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            usage: false,
        }
    }

    /// A mistake in the command line; the usage text is printed after it.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            usage: true,
        }
    }

    /// Whether the usage text should follow the message.
    pub fn is_usage(&self) -> bool {
        self.usage
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Self::new(format!("I/O error: {err}"))
    }
}

/// Result of an xtask command.
pub type Result<T> = std::result::Result<T, Error>;

/// The workspace root (the parent of xtask/).
pub fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The cargo binary that runs xtask (so `cargo +toolchain xtask` keeps its toolchain).
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Runs a command to completion, failing unless it exits with status 0.
pub fn run_checked(cmd: &mut Command) -> Result<()> {
    let shown = show(cmd);
    eprintln!("xtask: $ {shown}");
    let status = cmd
        .status()
        .map_err(|err| Error::new(format!("could not start `{shown}`: {err}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::new(format!("`{shown}` failed ({status})")))
    }
}

/// Runs a command and returns its stdout if it exits with status 0; `None` if it cannot run.
pub fn output_of(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    if out.status.success() {
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        None
    }
}

/// A printable form of a command line (program and arguments, no environment).
pub fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Parses the value of a numeric flag such as `--seconds 30`.
pub fn flag_value<T: std::str::FromStr>(
    flag: &str,
    args: &mut std::slice::Iter<'_, String>,
) -> Result<T> {
    let value = args
        .next()
        .ok_or_else(|| Error::usage(format!("{flag} needs a value")))?;
    value
        .parse()
        .map_err(|_| Error::usage(format!("{flag}: `{value}` is not a valid value")))
}

/// Finds `"key":` in a flat JSON text and parses the number after it.
///
/// Written by hand rather than with serde_json to keep xtask std-only: it only reads
/// files whose shape we know (criterion's estimates and our own bench reports).
pub fn json_number(text: &str, key: &str) -> Option<f64> {
    let needle = format!("\"{key}\":");
    let start = text.find(&needle)? + needle.len();
    let rest = text.get(start..)?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E')))
        .unwrap_or(rest.len());
    rest.get(..end)?.parse().ok()
}

/// Finds `"key":"value"` in a flat JSON text and returns the value (no escapes expected).
pub fn json_string(text: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\":");
    let start = text.find(&needle)? + needle.len();
    let rest = text.get(start..)?.trim_start().strip_prefix('"')?;
    let end = rest.find('"')?;
    Some(rest.get(..end)?.to_owned())
}

/// `cargo xtask ci`: runs the CI script with the remaining arguments.
pub fn ci(args: &[String]) -> Result<()> {
    let script = root().join(".ci").join("run");
    run_checked(
        Command::new("bash")
            .arg(script)
            .args(args)
            .current_dir(root()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_number_reads_criterion_estimates() {
        let text = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":10.5,"upper_bound":12.0},"point_estimate":11.25,"standard_error":0.3},"median":{"point_estimate":9e2}}"#;
        assert_eq!(json_number(text, "point_estimate"), Some(11.25));
        assert_eq!(json_number(text, "lower_bound"), Some(10.5));
        let median = text.find("\"median\"").unwrap();
        assert_eq!(json_number(&text[median..], "point_estimate"), Some(900.0));
        assert_eq!(json_number(text, "missing"), None);
    }

    #[test]
    fn json_string_reads_benchmark_ids() {
        let text = r#"{"group_id":"wire","function_id":"getupdates/decode","value_str":null}"#;
        assert_eq!(json_string(text, "group_id").as_deref(), Some("wire"));
        assert_eq!(
            json_string(text, "function_id").as_deref(),
            Some("getupdates/decode")
        );
        assert_eq!(json_string(text, "value_str"), None);
    }
}
