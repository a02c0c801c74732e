//! The dedupe tombstone journal of [`FileStore`](crate::FileStore): `dedupe.journal` in the
//! account directory, append-only, one JSON string per line (a key of a handled message).
//!
//! Each handled message (or batch of them) appends its lines and syncs the data: a few dozen
//! bytes, instead of rewriting the whole set. Now and then the journal is compacted: rewritten
//! atomically (temporary file, sync, rename) with only the keys still held. A line torn by a
//! crash (no trailing newline, or not a JSON string) is skipped when the journal is read.
//! A `dedupe.json` of an earlier version is read first and removed at the next compaction.

use std::fs;
use std::io::Write as _;
use std::path::Path;

/// File name of the journal.
pub(crate) const JOURNAL_FILE: &str = "dedupe.journal";
/// File name of the whole-set file of earlier versions.
pub(crate) const LEGACY_FILE: &str = "dedupe.json";

/// Longest line read back, in bytes; longer lines are skipped (a key is a few hundred bytes).
const MAX_LINE: usize = 64 * 1024;

/// The journal's bytes for `keys` (one JSON string and a newline each).
pub(crate) fn encode(keys: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(keys.len() * 32);
    for k in keys {
        if let Ok(line) = serde_json::to_vec(k) {
            out.extend_from_slice(&line);
            out.push(b'\n');
        }
    }
    out
}

/// The keys in a journal's bytes, oldest first; torn or foreign lines are skipped.
pub(crate) fn decode(bytes: &[u8]) -> Vec<String> {
    let mut keys = Vec::new();
    let mut rest = bytes;
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        let line = rest.get(..end).unwrap_or_default();
        rest = rest.get(end + 1..).unwrap_or_default();
        if line.len() > MAX_LINE {
            continue;
        }
        if let Ok(k) = serde_json::from_slice::<String>(line) {
            keys.push(k);
        }
    }
    // What follows the last newline is a torn append: skipped.
    keys
}

/// Appends `keys` to the journal at `path` (created with mode 0600) and syncs its data.
pub(crate) fn append(path: &Path, keys: &[String]) -> std::io::Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut opts = fs::OpenOptions::new();
    opts.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    // A torn line left by a crash has no newline: start on a fresh line so that this append
    // is not glued to it.
    let len = f.metadata()?.len();
    let mut bytes = Vec::new();
    if len > 0 && !ends_with_newline(path, len) {
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(&encode(keys));
    f.write_all(&bytes)?;
    f.sync_data()
}

fn ends_with_newline(path: &Path, len: u64) -> bool {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let Ok(mut f) = fs::File::open(path) else {
        return true;
    };
    let mut last = [0u8; 1];
    f.seek(SeekFrom::Start(len - 1)).is_ok() && f.read_exact(&mut last).is_ok() && last == [b'\n']
}

/// A command for the tombstone writer.
enum Command {
    /// Append these keys.
    Append(Vec<String>),
    /// Replace the stored keys with these (compaction).
    Compact(Vec<String>),
    /// Answer once everything before is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Writes an account's tombstones on a thread of its own, off the async executor, in the order
/// given. Appends that queue up while a write is in progress are written together, with one
/// sync (group commit). Falls back to writing in place if the thread cannot be started.
pub(crate) struct TombstoneWriter {
    tx: Option<std::sync::mpsc::Sender<Command>>,
    store: std::sync::Arc<dyn crate::StateStore>,
    account: String,
}

impl TombstoneWriter {
    pub(crate) fn start(store: std::sync::Arc<dyn crate::StateStore>, account: &str) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Command>();
        let (st, acct) = (store.clone(), account.to_owned());
        let spawned = std::thread::Builder::new()
            .name("ilink-tombstones".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    batch.extend(rx.try_iter());
                    run_batch(st.as_ref(), &acct, batch);
                }
            });
        let tx = match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::warn!(error = %e, "no tombstone writer thread; writing in place");
                None
            }
        };
        Self {
            tx,
            store,
            account: account.to_owned(),
        }
    }

    fn send(&self, cmd: Command) {
        let cmd = match &self.tx {
            Some(tx) => match tx.send(cmd) {
                Ok(()) => return,
                Err(std::sync::mpsc::SendError(cmd)) => cmd,
            },
            None => cmd,
        };
        run_batch(self.store.as_ref(), &self.account, vec![cmd]);
    }

    /// Queue an append.
    pub(crate) fn append(&self, keys: Vec<String>) {
        if !keys.is_empty() {
            self.send(Command::Append(keys));
        }
    }

    /// Queue a compaction to exactly `keys`.
    pub(crate) fn compact(&self, keys: Vec<String>) {
        self.send(Command::Compact(keys));
    }

    /// Wait until everything queued so far is written.
    pub(crate) async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.send(Command::Flush(done));
        let _ = wait.await;
    }
}

fn run_batch(store: &dyn crate::StateStore, account: &str, batch: Vec<Command>) {
    let mut pending: Vec<String> = Vec::new();
    let mut waiters = Vec::new();
    let write = |keys: &mut Vec<String>| {
        if keys.is_empty() {
            return;
        }
        if let Err(e) = store.append_tombstones(account, keys) {
            tracing::warn!(error = %e, "could not persist dedupe tombstones");
        }
        keys.clear();
    };
    for cmd in batch {
        match cmd {
            Command::Append(keys) => pending.extend(keys),
            Command::Compact(keys) => {
                // The snapshot holds every key appended before it.
                pending.clear();
                if let Err(e) = store.save_tombstones(account, &keys) {
                    tracing::warn!(error = %e, "could not compact dedupe tombstones");
                }
            }
            Command::Flush(done) => {
                write(&mut pending);
                waiters.push(done);
            }
        }
    }
    write(&mut pending);
    for w in waiters {
        let _ = w.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn_lines() {
        let keys = vec!["m:1".to_owned(), "c:a\nb\"".to_owned(), "f:00@5".to_owned()];
        let mut bytes = encode(&keys);
        assert_eq!(decode(&bytes), keys);
        bytes.extend_from_slice(b"\"m:torn");
        assert_eq!(decode(&bytes), keys);
        bytes.extend_from_slice(b"\nnot json\n\"m:2\"\n");
        let mut want = keys.clone();
        want.push("m:2".into());
        assert_eq!(decode(&bytes), want);
    }

    #[test]
    fn append_after_a_torn_line_starts_a_new_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(JOURNAL_FILE);
        append(&p, &["m:1".into()]).unwrap();
        fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"\"m:tor")
            .unwrap();
        append(&p, &["m:2".into()]).unwrap();
        assert_eq!(decode(&fs::read(&p).unwrap()), vec!["m:1", "m:2"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
