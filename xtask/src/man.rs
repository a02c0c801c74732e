//! `cargo xtask man`: the man page and shell completions of `ilink`, written by the binary
//! itself (`ilink man`, `ilink completions SHELL`, from its clap definition), so they never
//! drift from the command line.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{self, Error, Result};

/// Builds `ilink` and writes `ilink.1` and completions for bash, zsh and fish under `OUT`
/// (default `target/man`).
pub fn run(args: &[String]) -> Result<()> {
    let out = match args {
        [] => util::root().join("target").join("man"),
        [flag, dir] if flag == "--out" => PathBuf::from(dir),
        _ => return Err(Error::usage("usage: cargo xtask man [--out DIR]")),
    };
    util::run_checked(
        Command::new(util::cargo())
            .args(["build", "--quiet", "-p", "ilink-cli", "--bin", "ilink"])
            .current_dir(util::root()),
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| util::root().join("target"));
    let ilink = target
        .join("debug")
        .join(format!("ilink{}", std::env::consts::EXE_SUFFIX));
    std::fs::create_dir_all(&out)
        .map_err(|e| Error::new(format!("cannot create {}: {e}", out.display())))?;
    write_output(&ilink, &["man"], &out.join("ilink.1"))?;
    for (shell, file) in [
        ("bash", "ilink.bash"),
        ("zsh", "_ilink"),
        ("fish", "ilink.fish"),
    ] {
        write_output(&ilink, &["completions", shell], &out.join(file))?;
    }
    eprintln!(
        "xtask: wrote ilink.1, ilink.bash, _ilink and ilink.fish to {} (`man {}`)",
        out.display(),
        out.join("ilink.1").display()
    );
    Ok(())
}

fn write_output(program: &Path, args: &[&str], file: &Path) -> Result<()> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let text = util::output_of(&mut cmd)
        .ok_or_else(|| Error::new(format!("`{}` failed", util::show(&cmd))))?;
    std::fs::write(file, text)
        .map_err(|e| Error::new(format!("cannot write {}: {e}", file.display())))
}
