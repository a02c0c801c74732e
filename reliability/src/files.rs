//! Checks of a `FileStore` state directory: valid JSON, private modes, leftovers.

use std::path::{Path, PathBuf};

/// What [`inspect_state_dir`] found.
#[derive(Debug, Default, Clone)]
pub struct StateDirReport {
    /// State files (`*.json`, and `*.jsonl` journals line by line) that parsed as JSON.
    pub valid_json: Vec<PathBuf>,
    /// State files that did not parse, with the parser's message.
    pub invalid_json: Vec<(PathBuf, String)>,
    /// Files whose mode is not `0600`, with the mode.
    pub not_private_files: Vec<(PathBuf, u32)>,
    /// Directories whose mode is not `0700`, with the mode.
    pub not_private_dirs: Vec<(PathBuf, u32)>,
    /// Temporary files left behind by an interrupted atomic write (`.*.tmp`).
    pub temp_files: Vec<PathBuf>,
}

impl StateDirReport {
    /// True when every state file is valid JSON and private.
    pub fn is_clean(&self) -> bool {
        self.invalid_json.is_empty()
            && self.not_private_files.is_empty()
            && self.not_private_dirs.is_empty()
    }
}

/// Walks `root` (a `FileStore` root) and checks every file and directory under it. The root
/// itself is not checked for its mode (the caller created it).
pub fn inspect_state_dir(root: &Path) -> std::io::Result<StateDirReport> {
    let mut report = StateDirReport::default();
    walk(root, root, &mut report)?;
    Ok(report)
}

fn mode_of(meta: &std::fs::Metadata) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        meta.permissions().mode() & 0o777
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0o600
    }
}

fn walk(root: &Path, dir: &Path, report: &mut StateDirReport) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let meta = entry.metadata()?;
        if meta.is_dir() {
            let mode = mode_of(&meta);
            if mode != 0o700 {
                report.not_private_dirs.push((path.clone(), mode));
            }
            walk(root, &path, report)?;
            continue;
        }
        let mode = mode_of(&meta);
        if mode != 0o600 {
            report.not_private_files.push((path.clone(), mode));
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".tmp") {
            report.temp_files.push(path);
            continue;
        }
        let bytes = std::fs::read(&path)?;
        if name.ends_with(".jsonl") || name.ends_with(".journal") {
            // An append-only journal: every complete line is JSON; a torn last line (a crash
            // during an append) is allowed, its reader cuts it off.
            let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let bad = bytes
                .get(..complete)
                .unwrap_or_default()
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .find_map(|l| serde_json::from_slice::<serde_json::Value>(l).err());
            match bad {
                None => report.valid_json.push(path),
                Some(e) => report.invalid_json.push((path, e.to_string())),
            }
            continue;
        }
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(_) => report.valid_json.push(path),
            Err(e) => report.invalid_json.push((path, e.to_string())),
        }
    }
    let _ = root;
    Ok(())
}
