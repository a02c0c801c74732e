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

/// A command for the progress writer.
enum Command {
    /// Append these keys.
    Append(Vec<String>),
    /// Replace the stored keys with these (compaction).
    Compact(Vec<String>),
    /// Save this cursor (after every key queued before it).
    Cursor(ilink_proto::Secret),
    /// Answer once everything before is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Writes an account's progress (dedupe tombstones and cursor) in a tokio task of its own, in
/// the order given, through the async [`StateStore`](crate::StateStore) (the file store does
/// its I/O on the blocking pool). Appends that queue up while a write is in progress are
/// written together, with one sync (group commit); a cursor is saved only after the
/// tombstones queued before it. Every write carries the account's lease fence while a leased
/// run serves it; a refused fence marks the lease lost. The task ends when the writer is
/// dropped, after writing what was queued.
pub(crate) struct TombstoneWriter {
    tx: tokio::sync::mpsc::UnboundedSender<Command>,
}

impl TombstoneWriter {
    /// Starts the writer task (needs a tokio runtime).
    pub(crate) fn start(account: crate::Account) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Command>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                run_batch(&account, batch).await;
            }
        });
        Self { tx }
    }

    fn send(&self, cmd: Command) {
        // The task only ends when this sender is dropped.
        if self.tx.send(cmd).is_err() {
            tracing::warn!("the progress writer stopped; a write was dropped");
        }
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

    /// Queue saving the cursor (after everything queued before).
    pub(crate) fn cursor(&self, cursor: ilink_proto::Secret) {
        self.send(Command::Cursor(cursor));
    }

    /// Wait until everything queued so far is written.
    pub(crate) async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.send(Command::Flush(done));
        let _ = wait.await;
    }
}

async fn run_batch(account: &crate::Account, batch: Vec<Command>) {
    let store = account.shared().store.clone();
    let id = account.id();
    let mut pending: Vec<String> = Vec::new();
    let mut waiters = Vec::new();
    async fn write(account: &crate::Account, keys: &mut Vec<String>) {
        if keys.is_empty() {
            return;
        }
        let fence = account.fence();
        if let Err(e) = account
            .shared()
            .store
            .append_tombstones(account.id(), keys, fence.as_ref())
            .await
        {
            account.note_store_error(&e);
            tracing::warn!(error = %e, "could not persist dedupe tombstones");
        }
        keys.clear();
    }
    for cmd in batch {
        match cmd {
            Command::Append(keys) => pending.extend(keys),
            Command::Compact(keys) => {
                // The snapshot holds every key appended before it.
                pending.clear();
                let fence = account.fence();
                if let Err(e) = store.save_tombstones(id, &keys, fence.as_ref()).await {
                    account.note_store_error(&e);
                    tracing::warn!(error = %e, "could not compact dedupe tombstones");
                }
            }
            Command::Cursor(cursor) => {
                write(account, &mut pending).await;
                let fence = account.fence();
                if let Err(e) = store.save_cursor(id, &cursor, fence.as_ref()).await {
                    account.note_store_error(&e);
                    // Keep polling with the new cursor in memory; the batch may come again
                    // after a restart, and dedupe hides it.
                    tracing::warn!(error = %e, "could not persist the cursor");
                }
            }
            Command::Flush(done) => {
                write(account, &mut pending).await;
                waiters.push(done);
            }
        }
    }
    write(account, &mut pending).await;
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
