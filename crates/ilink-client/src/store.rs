//! Persistent state: credentials, the update cursor, context tokens and dedupe tombstones.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ilink_proto::Secret;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// The credentials of one logged-in bot account (what a confirmed QR login returns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The bot's id, `ilink_bot_id` (`…@im.bot`); the account id.
    pub account_id: String,
    /// The bearer token, `bot_token`.
    pub token: Secret,
    /// The API base URL, `baseurl`, if the server gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The WeChat user who scanned the QR code, `ilink_user_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// When these credentials were saved, in epoch milliseconds.
    #[serde(default)]
    pub saved_at_ms: u64,
}

/// Where a bot keeps its state. All methods are keyed by the account id (`…@im.bot`).
///
/// Implementations must make every `save_*` atomic: after a crash, a reader sees either the old
/// or the new value, never a mix. Calls are small and infrequent (the cursor once per batch), so
/// they are synchronous.
pub trait StateStore: Send + Sync + 'static {
    /// The stored accounts, oldest login first.
    fn accounts(&self) -> Result<Vec<String>>;
    /// The credentials of an account, if stored.
    fn load_credentials(&self, account: &str) -> Result<Option<Credentials>>;
    /// Store credentials (replacing any for the same account).
    fn save_credentials(&self, creds: &Credentials) -> Result<()>;
    /// Forget an account and all its state.
    fn remove_account(&self, account: &str) -> Result<()>;
    /// The `get_updates_buf` cursor, if stored.
    fn load_cursor(&self, account: &str) -> Result<Option<Secret>>;
    /// Store the cursor.
    fn save_cursor(&self, account: &str, cursor: &Secret) -> Result<()>;
    /// The latest context token per peer user.
    fn load_context_tokens(&self, account: &str) -> Result<HashMap<String, Secret>>;
    /// Store the whole map of context tokens.
    fn save_context_tokens(&self, account: &str, tokens: &HashMap<String, Secret>) -> Result<()>;
    /// The dedupe tombstones (keys of inbound messages already handled), oldest first.
    fn load_tombstones(&self, account: &str) -> Result<Vec<String>>;
    /// Replace the stored dedupe tombstones with `keys` (a compaction). Called now and then,
    /// not per message.
    fn save_tombstones(&self, account: &str, keys: &[String]) -> Result<()>;
    /// Add `keys` after the stored tombstones; called for each handled message or batch, off
    /// the async executor. It must be durable when it returns. The default loads, extends and
    /// saves the whole set; [`FileStore`] appends to a journal instead.
    fn append_tombstones(&self, account: &str, keys: &[String]) -> Result<()> {
        let mut all = self.load_tombstones(account)?;
        all.extend_from_slice(keys);
        self.save_tombstones(account, &all)
    }

    /// The outbox journal of an account (reply budget, outbound queue and turn journal; see
    /// [`crate::outbox`]): every record appended and not yet replaced, oldest first. Records
    /// are opaque one-line strings. A record whose append was interrupted by a crash is absent.
    ///
    /// The default returns an [`ErrorKind::Store`] error: a store that keeps no outbox makes
    /// the client keep the queue in memory only (with a warning in the log).
    fn load_outbox(&self, account: &str) -> Result<Vec<String>> {
        let _ = account;
        Err(Error::new(
            ErrorKind::Store,
            "this state store keeps no outbox",
        ))
    }

    /// Append one record (a line without `\n`) to the outbox journal. When this returns `Ok`
    /// the record is durable (the file store fsyncs); after a crash it is wholly present or
    /// absent, and records keep their order.
    fn append_outbox(&self, account: &str, record: &str) -> Result<()> {
        let _ = (account, record);
        Err(Error::new(
            ErrorKind::Store,
            "this state store keeps no outbox",
        ))
    }

    /// Replace the whole outbox journal with `records`, atomically (compaction).
    fn replace_outbox(&self, account: &str, records: &[String]) -> Result<()> {
        let _ = (account, records);
        Err(Error::new(
            ErrorKind::Store,
            "this state store keeps no outbox",
        ))
    }

    /// Called once when a client opens an account, before its state is loaded: a place to
    /// tidy up after a crash. [`FileStore`] removes the temporary files of atomic writes that a
    /// crash interrupted. The default does nothing.
    fn open_account(&self, account: &str) -> Result<()> {
        let _ = account;
        Ok(())
    }

    /// Checks, before a login asks for a QR code, that credentials can be saved (for
    /// [`FileStore`]: the directory can be created and written, and there is room for the
    /// files), so a confirmed login is never lost to a store that cannot take it. The default
    /// does nothing.
    fn check_writable(&self) -> Result<()> {
        Ok(())
    }

    /// Claims the right to consume the messages of `account` (one consumer per account: two
    /// would both answer every message, or one would mark as handled what the other never
    /// saw). The claim lasts until the returned [`ConsumerLock`] is dropped; an update stream
    /// holds it while it runs. Fails with [`ErrorKind::AccountBusy`] when another consumer
    /// holds it. [`FileStore`] uses an OS file lock (released by the OS if the process dies);
    /// the default claims nothing (an account still has only one stream per process).
    fn lock_consumer(&self, account: &str) -> Result<Option<ConsumerLock>> {
        let _ = account;
        Ok(None)
    }
}

/// A claim on consuming an account's messages, from [`StateStore::lock_consumer`]; released
/// when dropped.
pub struct ConsumerLock {
    _guard: Box<dyn std::any::Any + Send + Sync>,
    path: Option<PathBuf>,
}

impl ConsumerLock {
    /// A lock held by `guard` (released when `guard` drops), for other [`StateStore`]s.
    pub fn new(guard: impl std::any::Any + Send + Sync) -> Self {
        Self {
            _guard: Box::new(guard),
            path: None,
        }
    }

    /// The lock file, for [`FileStore`].
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

impl std::fmt::Debug for ConsumerLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerLock")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The directory-safe form of an account id: `b0f5860fdecb@im.bot` → `b0f5860fdecb-im-bot`.
pub fn normalize_account_id(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// State kept in memory only (for tests and short-lived tools).
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<BTreeMap<String, MemAccount>>,
    order: Mutex<Vec<String>>,
    outbox: crate::outbox::MemoryJournal,
}

#[derive(Debug, Default, Clone)]
struct MemAccount {
    creds: Option<Credentials>,
    cursor: Option<Secret>,
    tokens: HashMap<String, Secret>,
    tombstones: Vec<String>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, account: &str, f: impl FnOnce(&mut MemAccount) -> T) -> Result<T> {
        let mut map = self
            .inner
            .lock()
            .map_err(|_| Error::new(ErrorKind::Store, "memory store lock poisoned"))?;
        Ok(f(map.entry(account.to_owned()).or_default()))
    }
}

impl StateStore for MemoryStore {
    fn accounts(&self) -> Result<Vec<String>> {
        let map = self
            .inner
            .lock()
            .map_err(|_| Error::new(ErrorKind::Store, "memory store lock poisoned"))?;
        let order = self
            .order
            .lock()
            .map_err(|_| Error::new(ErrorKind::Store, "memory store lock poisoned"))?;
        Ok(order
            .iter()
            .filter(|a| map.get(*a).is_some_and(|m| m.creds.is_some()))
            .cloned()
            .collect())
    }
    fn load_credentials(&self, account: &str) -> Result<Option<Credentials>> {
        self.with(account, |a| a.creds.clone())
    }
    fn save_credentials(&self, creds: &Credentials) -> Result<()> {
        self.with(&creds.account_id, |a| a.creds = Some(creds.clone()))?;
        let mut order = self
            .order
            .lock()
            .map_err(|_| Error::new(ErrorKind::Store, "memory store lock poisoned"))?;
        order.retain(|a| a != &creds.account_id);
        order.push(creds.account_id.clone());
        Ok(())
    }
    fn remove_account(&self, account: &str) -> Result<()> {
        if let Ok(mut map) = self.inner.lock() {
            map.remove(account);
        }
        if let Ok(mut order) = self.order.lock() {
            order.retain(|a| a != account);
        }
        Ok(())
    }
    fn load_cursor(&self, account: &str) -> Result<Option<Secret>> {
        self.with(account, |a| a.cursor.clone())
    }
    fn save_cursor(&self, account: &str, cursor: &Secret) -> Result<()> {
        self.with(account, |a| a.cursor = Some(cursor.clone()))
    }
    fn load_context_tokens(&self, account: &str) -> Result<HashMap<String, Secret>> {
        self.with(account, |a| a.tokens.clone())
    }
    fn save_context_tokens(&self, account: &str, tokens: &HashMap<String, Secret>) -> Result<()> {
        self.with(account, |a| a.tokens = tokens.clone())
    }
    fn load_tombstones(&self, account: &str) -> Result<Vec<String>> {
        self.with(account, |a| a.tombstones.clone())
    }
    fn save_tombstones(&self, account: &str, keys: &[String]) -> Result<()> {
        self.with(account, |a| a.tombstones = keys.to_vec())
    }
    fn append_tombstones(&self, account: &str, keys: &[String]) -> Result<()> {
        self.with(account, |a| a.tombstones.extend_from_slice(keys))
    }
    fn load_outbox(&self, account: &str) -> Result<Vec<String>> {
        self.outbox.load(account)
    }
    fn append_outbox(&self, account: &str, record: &str) -> Result<()> {
        self.outbox.append(account, record)
    }
    fn replace_outbox(&self, account: &str, records: &[String]) -> Result<()> {
        self.outbox.replace(account, records)
    }
}

/// State in files: one directory per account under `<root>/accounts/<normalized id>/`, holding
/// `credentials.json`, `cursor.json`, `context_tokens.json`, the dedupe journal
/// `dedupe.journal` (appended to with a data sync per handled message or batch, and compacted
/// now and then) and the outbox journal `outbox.jsonl` (append-only, see [`crate::outbox`]).
/// Every file is written atomically (a temporary file `.<name>.<random>.tmp` in the same
/// directory, synced, then renamed over the old one) with mode 0600, except the journals'
/// appends, whose torn last line a reader skips; directories are created with mode 0700.
/// Temporary files left by a crash are removed when a client opens the account
/// ([`StateStore::open_account`]), so a bot that crashes often does not grow its directory.
///
/// Every file is a JSON object with a format `"version"` (1; a file without one is read as the
/// version 1 layout, as written before versions existed) and is validated when read. A file
/// that cannot be read as its kind (empty, truncated, not JSON, the wrong JSON type, an
/// invalid version, a directory in its place) is **moved aside** as `NAME.corrupt-<UTC time>`
/// with a warning (`tracing`, level warn) that names both paths and says what was lost, and the
/// store goes on as if the file did not exist:
///
/// | file | what is lost when it is moved aside |
/// |---|---|
/// | `credentials.json` | the login of that bot: run `ilink login` again |
/// | `cursor.json` | the position in the message stream: the server sends its next batch; handled messages the dedupe file remembers are still skipped |
/// | `context_tokens.json` | the users' context tokens: each user must write again before the bot can send to them |
/// | `dedupe.json` | the memory of handled messages: recent messages may be delivered again |
///
/// A file written by a newer ilink (a higher `"version"`) is not touched: reading it fails
/// with an [`ErrorKind::Store`] error naming the file and the fix (upgrade, or move it aside).
/// Neither is a file that cannot be opened (permissions, I/O errors): that is an
/// [`ErrorKind::Store`] error naming it.
///
/// `consumer.lock` (an OS file lock, see [`StateStore::lock_consumer`]) and `consumer.json`
/// (the PID of the process holding it) sit beside them.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

/// One kind of state file of the [`FileStore`]: its name, its format version and what is lost
/// when a corrupt copy is moved aside.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StateFile {
    /// The file name in the account directory.
    pub(crate) name: &'static str,
    /// The newest format version this build reads and writes.
    pub(crate) version: u64,
    /// What is lost when the file is moved aside, for the warning.
    pub(crate) loss: &'static str,
}

pub(crate) const CREDENTIALS_FILE: StateFile = StateFile {
    name: "credentials.json",
    version: 1,
    loss: "the bot's login is lost: run `ilink login` again",
};
pub(crate) const CURSOR_FILE: StateFile = StateFile {
    name: "cursor.json",
    version: 1,
    loss: "the position in the message stream is lost: the server sends its next batch \
           (handled messages that the dedupe file remembers are still skipped)",
};
pub(crate) const CONTEXT_TOKENS_FILE: StateFile = StateFile {
    name: "context_tokens.json",
    version: 1,
    loss: "the users' context tokens are lost: each user must write to the bot again before \
           it can send to them",
};
pub(crate) const DEDUPE_FILE: StateFile = StateFile {
    name: "dedupe.json",
    version: 1,
    loss: "the memory of handled messages is lost: recent messages may be delivered again",
};

/// The largest state file read, in bytes; a bigger one is treated as corrupt.
const MAX_STATE_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The name of the lock file of an account's consumer.
const LOCK_FILE: &str = "consumer.lock";
/// The name of the file with the PID of the consumer holding the lock.
const HOLDER_FILE: &str = "consumer.json";

const HOLDER_STATE: StateFile = StateFile {
    name: HOLDER_FILE,
    version: 1,
    loss: "only the PID of the last consumer is lost",
};

/// Why a state file could not be used.
enum Invalid {
    /// Corrupt: moved aside.
    Corrupt(String),
    /// Written by a newer version of the format.
    Newer(u64),
    /// Not readable (permissions, I/O): not the file's fault, so left alone.
    Io(std::io::Error),
}

#[derive(Serialize, Deserialize)]
struct CursorFile {
    get_updates_buf: Secret,
}

#[derive(Serialize, Deserialize)]
struct TokensFile {
    tokens: BTreeMap<String, Secret>,
}

#[derive(Serialize, Deserialize)]
struct HolderFile {
    pid: u32,
    since_ms: u64,
}

#[derive(Serialize)]
struct Versioned<'a, T> {
    version: u64,
    #[serde(flatten)]
    data: &'a T,
}

#[derive(Serialize, Deserialize, Default)]
struct TombstoneFile {
    keys: Vec<String>,
}

impl FileStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The default state directory: `$ILINK_STATE_DIR`, else `$XDG_STATE_HOME/ilink`, else
    /// `$HOME/.local/state/ilink`, else `./.ilink`.
    pub fn default_dir() -> PathBuf {
        if let Some(d) = std::env::var_os("ILINK_STATE_DIR") {
            return PathBuf::from(d);
        }
        if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
            return PathBuf::from(d).join("ilink");
        }
        if let Some(h) = std::env::var_os("HOME") {
            return PathBuf::from(h).join(".local/state/ilink");
        }
        PathBuf::from(".ilink")
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of one account.
    pub fn account_dir(&self, account: &str) -> PathBuf {
        self.root
            .join("accounts")
            .join(normalize_account_id(account))
    }

    /// Reads the state file `file` of `account`, validated: `decode` gets the format version
    /// (`0` for a file written before versions existed) and the JSON object without its
    /// `"version"`, and says why it is invalid. A missing file is `None`; a corrupt one is
    /// moved aside with a warning and is `None` too; a newer one is an error naming the file.
    pub(crate) fn read_state<T>(
        &self,
        account: &str,
        file: &StateFile,
        decode: impl FnOnce(u64, serde_json::Value) -> std::result::Result<T, String>,
    ) -> Result<Option<T>> {
        let path = self.account_dir(account).join(file.name);
        self.read_state_at(&path, file, decode)
    }

    fn read_state_at<T>(
        &self,
        path: &Path,
        file: &StateFile,
        decode: impl FnOnce(u64, serde_json::Value) -> std::result::Result<T, String>,
    ) -> Result<Option<T>> {
        match read_state_file(path, file, decode) {
            Ok(v) => Ok(v),
            Err(Invalid::Newer(v)) => Err(Error::new(
                ErrorKind::Store,
                format!(
                    "{} was written by a newer ilink (format version {v}; this one reads up to \
                     {}): upgrade ilink, or move the file aside to start over ({})",
                    path.display(),
                    file.version,
                    file.loss
                ),
            )),
            Err(Invalid::Io(e)) => Err(Error::store(
                format!(
                    "reading {}: check the file's owner and permissions",
                    path.display()
                ),
                e,
            )),
            Err(Invalid::Corrupt(why)) => {
                let aside = move_aside(path)?;
                tracing::warn!(
                    "{} is corrupt ({why}); moved it aside to {}; {}",
                    path.display(),
                    aside.display(),
                    file.loss
                );
                Ok(None)
            }
        }
    }

    /// Writes the state file `file` of `account` atomically (mode 0600), with its version. A
    /// directory in the file's place is moved aside first.
    pub(crate) fn write_state<T: Serialize>(
        &self,
        account: &str,
        file: &StateFile,
        value: &T,
    ) -> Result<()> {
        let dir = self.account_dir(account);
        create_private_dir(&dir)?;
        let bytes = serde_json::to_vec_pretty(&Versioned {
            version: file.version,
            data: value,
        })
        .map_err(|e| Error::new(ErrorKind::Store, "encoding state").with_source(e))?;
        let path = dir.join(file.name);
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            let aside = move_aside(&path)?;
            tracing::warn!(
                "{} was a directory; moved it aside to {}",
                path.display(),
                aside.display()
            );
        }
        write_atomic(&path, &bytes)
    }

    /// The PID of the process consuming `account`'s messages (holding its
    /// [`ConsumerLock`]), if one does; `None` when nobody does (or the PID is unknown).
    /// Takes no lock and writes nothing.
    pub fn consumer_pid(&self, account: &str) -> Option<u32> {
        let path = self.account_dir(account).join(LOCK_FILE);
        let file = fs::OpenOptions::new().read(true).open(&path).ok()?;
        match file.try_lock_shared() {
            Ok(()) => None,
            Err(fs::TryLockError::WouldBlock) => self
                .read_state(account, &HOLDER_STATE, |_, v| {
                    serde_json::from_value::<HolderFile>(v).map_err(|e| e.to_string())
                })
                .ok()
                .flatten()
                .map(|h| h.pid),
            Err(fs::TryLockError::Error(_)) => None,
        }
    }

    fn load_credentials_at(&self, path: &Path) -> Result<Option<Credentials>> {
        let dir_name = path
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.read_state_at(path, &CREDENTIALS_FILE, |_, v| {
            let c: Credentials = serde_json::from_value(v).map_err(|e| e.to_string())?;
            if c.account_id.trim().is_empty() {
                return Err("its account_id is empty".into());
            }
            if normalize_account_id(&c.account_id) != dir_name {
                return Err(format!(
                    "it holds account {} but sits in the directory of another",
                    c.account_id
                ));
            }
            if c.token.expose().trim().is_empty() {
                return Err("its token is empty".into());
            }
            Ok(c)
        })
    }
}

/// Reads and validates one state file (see [`FileStore::read_state`]).
fn read_state_file<T>(
    path: &Path,
    file: &StateFile,
    decode: impl FnOnce(u64, serde_json::Value) -> std::result::Result<T, String>,
) -> std::result::Result<Option<T>, Invalid> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Invalid::Io(e)),
    };
    if meta.is_dir() {
        return Err(Invalid::Corrupt("a directory is in its place".into()));
    }
    if meta.len() > MAX_STATE_FILE_BYTES {
        return Err(Invalid::Corrupt(format!(
            "{} bytes, more than the {MAX_STATE_FILE_BYTES} a state file may have",
            meta.len()
        )));
    }
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(Invalid::Corrupt(format!("cannot read it: {e}")));
        }
        Err(e) => return Err(Invalid::Io(e)),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Invalid::Corrupt("it is empty".into()));
    }
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Invalid::Corrupt(format!("not valid JSON: {e}")))?;
    let serde_json::Value::Object(mut map) = value else {
        return Err(Invalid::Corrupt("not a JSON object".into()));
    };
    let version = match map.remove("version") {
        None => 0,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 && n <= file.version => n,
            Some(n) if n > file.version => return Err(Invalid::Newer(n)),
            _ => return Err(Invalid::Corrupt(format!("its version {v} is not valid"))),
        },
    };
    decode(version, serde_json::Value::Object(map))
        .map(Some)
        .map_err(|why| Invalid::Corrupt(format!("not a valid {}: {why}", file.name)))
}

/// Renames `path` to `path.corrupt-<UTC time>` (a free name) and returns the new path.
fn move_aside(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stamp = utc_stamp(crate::util::now_ms() / 1000);
    for n in 0..100u32 {
        let suffix = if n == 0 {
            String::new()
        } else {
            format!("-{n}")
        };
        let aside = path.with_file_name(format!("{name}.corrupt-{stamp}{suffix}"));
        if fs::symlink_metadata(&aside).is_ok() {
            continue;
        }
        return fs::rename(path, &aside)
            .map(|()| aside)
            .map_err(|e| Error::store(format!("moving the corrupt {} aside", path.display()), e));
    }
    Err(Error::new(
        ErrorKind::Store,
        format!("too many corrupt copies of {} already", path.display()),
    ))
}

/// `YYYYMMDDTHHMMSSZ` for epoch seconds (UTC).
fn utc_stamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Writes `creds` to a new file `path` (mode 0600, never replacing one), in the format of
/// `credentials.json`.
pub(crate) fn write_rescue(path: &Path, creds: &Credentials) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(&Versioned {
        version: CREDENTIALS_FILE.version,
        data: creds,
    })
    .map_err(std::io::Error::other)?;
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(&bytes)?;
    f.sync_all()
}

/// A fresh temporary path beside `path`: `.<name>.<random>.tmp` in the same directory (what
/// [`remove_stale_temps`] cleans up after a crash).
fn temp_beside(path: &Path) -> std::path::PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(
        ".{name}.{}.tmp",
        crate::util::random_hex(TEMP_RANDOM_HEX / 2)
    ))
}

/// Creates the new file `tmp` with mode 0600 and writes and syncs `bytes` into it.
fn write_new_private(tmp: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Creates `path` with `bytes` only if it does not exist (never replacing a file another
/// process may have opened): a temporary file hard-linked into place.
fn create_once(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let tmp = temp_beside(path);
    let result = write_new_private(&tmp, bytes).and_then(|()| match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    });
    let _ = fs::remove_file(&tmp);
    result
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| Error::store(format!("creating {}", dir.display()), e))
}

/// Length of the random part of a temporary file name, in hex digits.
const TEMP_RANDOM_HEX: usize = 16;

/// Whether `name` is the name of a temporary file of [`write_atomic`]:
/// `.<target>.<16 hex digits>.tmp`.
fn is_temp_name(name: &str) -> bool {
    let Some(inner) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
        return false;
    };
    match inner.rsplit_once('.') {
        Some((target, random)) => {
            !target.is_empty()
                && random.len() == TEMP_RANDOM_HEX
                && random.bytes().all(|b| b.is_ascii_hexdigit())
        }
        None => false,
    }
}

/// Remove the temporary files of [`write_atomic`] in `dir` (left behind when a crash
/// interrupted a write). A write in progress in another process whose temporary file is
/// removed here starts again (see [`write_atomic`]); the target files are never touched.
fn remove_stale_temps(dir: &Path) -> Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::store(format!("listing {}", dir.display()), e)),
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(is_temp_name) {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::store(
                    format!("removing {}", entry.path().display()),
                    e,
                ));
            }
        }
    }
    Ok(removed)
}

/// Write `bytes` to `path` atomically with mode 0600.
///
/// If the temporary file disappears before the rename (another process opening the account
/// removed it as stale), the write starts again with a new one, up to 3 times in all.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut attempt = 1;
    loop {
        match write_atomic_once(path, bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 3 => attempt += 1,
            Err(e) => return Err(Error::store(format!("writing {}", path.display()), e)),
            Ok(()) => return Ok(()),
        }
    }
}

fn write_atomic_once(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_beside(path);
    let result = (|| -> std::io::Result<()> {
        write_new_private(&tmp, bytes)?;
        fs::rename(&tmp, path)?;
        #[cfg(unix)]
        if let Ok(d) = fs::File::open(path.parent().unwrap_or(Path::new("."))) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

impl StateStore for FileStore {
    fn accounts(&self) -> Result<Vec<String>> {
        let dir = self.root.join("accounts");
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::store(format!("listing {}", dir.display()), e)),
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path().join(CREDENTIALS_FILE.name);
            // One unreadable account must not hide the others (or block a login).
            match self.load_credentials_at(&path) {
                Ok(Some(c)) => found.push((c.saved_at_ms, c.account_id)),
                Ok(None) => {}
                Err(e) => tracing::warn!("skipping an account: {e}"),
            }
        }
        found.sort();
        Ok(found.into_iter().map(|(_, a)| a).collect())
    }
    fn load_credentials(&self, account: &str) -> Result<Option<Credentials>> {
        self.load_credentials_at(&self.account_dir(account).join(CREDENTIALS_FILE.name))
    }
    fn save_credentials(&self, creds: &Credentials) -> Result<()> {
        self.write_state(&creds.account_id, &CREDENTIALS_FILE, creds)
    }
    fn remove_account(&self, account: &str) -> Result<()> {
        let dir = self.account_dir(account);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::store(format!("removing {}", dir.display()), e)),
        }
    }
    fn load_cursor(&self, account: &str) -> Result<Option<Secret>> {
        self.read_state(account, &CURSOR_FILE, |_, v| {
            serde_json::from_value::<CursorFile>(v)
                .map(|c| c.get_updates_buf)
                .map_err(|e| e.to_string())
        })
    }
    fn save_cursor(&self, account: &str, cursor: &Secret) -> Result<()> {
        self.write_state(
            account,
            &CURSOR_FILE,
            &CursorFile {
                get_updates_buf: cursor.clone(),
            },
        )
    }
    fn load_context_tokens(&self, account: &str) -> Result<HashMap<String, Secret>> {
        Ok(self
            .read_state(account, &CONTEXT_TOKENS_FILE, |version, v| {
                let tokens = if version == 0 {
                    // Before versions: the map itself.
                    serde_json::from_value::<BTreeMap<String, Secret>>(v)
                } else {
                    serde_json::from_value::<TokensFile>(v).map(|f| f.tokens)
                }
                .map_err(|e| e.to_string())?;
                Ok(tokens.into_iter().collect::<HashMap<_, _>>())
            })?
            .unwrap_or_default())
    }
    fn save_context_tokens(&self, account: &str, tokens: &HashMap<String, Secret>) -> Result<()> {
        let tokens: BTreeMap<String, Secret> =
            tokens.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        self.write_state(account, &CONTEXT_TOKENS_FILE, &TokensFile { tokens })
    }
    fn load_tombstones(&self, account: &str) -> Result<Vec<String>> {
        let dir = self.account_dir(account);
        // A whole-set file of earlier versions (versioned, recovered like every state file),
        // then the journal.
        let mut keys = self
            .read_state(account, &DEDUPE_FILE, |_, v| {
                serde_json::from_value::<TombstoneFile>(v).map_err(|e| e.to_string())
            })?
            .unwrap_or_default()
            .keys;
        let path = dir.join(crate::journal::JOURNAL_FILE);
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            let aside = move_aside(&path)?;
            tracing::warn!(
                "{} was a directory; moved it aside to {}; {}",
                path.display(),
                aside.display(),
                DEDUPE_FILE.loss
            );
            return Ok(keys);
        }
        // Torn or foreign lines are skipped by the decoder: a damaged journal loses only them.
        match fs::read(&path) {
            Ok(bytes) => keys.extend(crate::journal::decode(&bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::store(
                    format!(
                        "reading {}: check the file's owner and permissions",
                        path.display()
                    ),
                    e,
                ));
            }
        }
        Ok(keys)
    }
    fn save_tombstones(&self, account: &str, keys: &[String]) -> Result<()> {
        let dir = self.account_dir(account);
        create_private_dir(&dir)?;
        write_atomic(
            &dir.join(crate::journal::JOURNAL_FILE),
            &crate::journal::encode(keys),
        )?;
        match fs::remove_file(dir.join(crate::journal::LEGACY_FILE)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::store("removing the old dedupe.json", e)),
        }
    }
    fn append_tombstones(&self, account: &str, keys: &[String]) -> Result<()> {
        let dir = self.account_dir(account);
        create_private_dir(&dir)?;
        let path = dir.join(crate::journal::JOURNAL_FILE);
        crate::journal::append(&path, keys)
            .map_err(|e| Error::store(format!("appending to {}", path.display()), e))
    }
    fn load_outbox(&self, account: &str) -> Result<Vec<String>> {
        crate::outbox::file_load(&self.account_dir(account))
    }
    fn append_outbox(&self, account: &str, record: &str) -> Result<()> {
        let dir = self.account_dir(account);
        create_private_dir(&dir)?;
        crate::outbox::file_append(&dir, record)
    }
    fn replace_outbox(&self, account: &str, records: &[String]) -> Result<()> {
        let dir = self.account_dir(account);
        create_private_dir(&dir)?;
        let mut bytes = Vec::new();
        for r in records {
            bytes.extend_from_slice(r.as_bytes());
            bytes.push(b'\n');
        }
        write_atomic(&dir.join(crate::outbox::JOURNAL_FILE), &bytes)
    }
    fn open_account(&self, account: &str) -> Result<()> {
        let removed = remove_stale_temps(&self.account_dir(account))?;
        if removed > 0 {
            tracing::debug!(
                account,
                removed,
                "removed temporary files of interrupted writes"
            );
        }
        Ok(())
    }
    fn check_writable(&self) -> Result<()> {
        let dir = self.root.join("accounts");
        let result = create_private_dir(&dir).and_then(|()| {
            // Room for the credentials and the other state files of a new account, written
            // the way they will be.
            let probe = dir.join(format!(".probe-{}", crate::util::random_hex(8)));
            let result = write_atomic(&probe, &[b' '; 16 * 1024]);
            let _ = fs::remove_file(&probe);
            result
        });
        result.map_err(|e| {
            Error::new(
                ErrorKind::Store,
                format!(
                    "the state directory {} cannot be written",
                    self.root.display()
                ),
            )
            .with_source(e)
        })
    }
    fn lock_consumer(&self, account: &str) -> Result<Option<ConsumerLock>> {
        let dir = self.account_dir(account);
        create_private_dir(&dir)?;
        let path = dir.join(LOCK_FILE);
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            let aside = move_aside(&path)?;
            tracing::warn!(
                "{} was a directory; moved it aside to {}",
                path.display(),
                aside.display()
            );
        }
        create_once(
            &path,
            b"{\"version\": 1, \"note\": \"locked while a process consumes this account's messages; see consumer.json\"}\n",
        )
        .map_err(|e| Error::store(format!("creating {}", path.display()), e))?;
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::store(format!("opening {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = self
                    .read_state(account, &HOLDER_STATE, |_, v| {
                        serde_json::from_value::<HolderFile>(v).map_err(|e| e.to_string())
                    })
                    .ok()
                    .flatten();
                let who = match holder {
                    Some(h) => format!("process {}", h.pid),
                    None => "another process".to_owned(),
                };
                return Err(Error::new(
                    ErrorKind::AccountBusy,
                    format!(
                        "account {account} is already being consumed by {who} (lock {})",
                        path.display()
                    ),
                ));
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(Error::store(format!("locking {}", path.display()), e));
            }
        }
        self.write_state(
            account,
            &HOLDER_STATE,
            &HolderFile {
                pid: std::process::id(),
                since_ms: crate::util::now_ms(),
            },
        )?;
        Ok(Some(ConsumerLock {
            _guard: Box::new(file),
            path: Some(path),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(id: &str, at: u64) -> Credentials {
        Credentials {
            account_id: id.into(),
            token: Secret::from("TOKEN-SECRET"),
            base_url: Some("http://127.0.0.1:1".into()),
            user_id: Some("u@im.wechat".into()),
            saved_at_ms: at,
        }
    }

    fn exercise(store: &dyn StateStore) {
        assert!(store.accounts().unwrap().is_empty());
        assert_eq!(store.load_credentials("a@im.bot").unwrap(), None);
        store.save_credentials(&creds("b@im.bot", 2)).unwrap();
        store.save_credentials(&creds("a@im.bot", 1)).unwrap();
        assert_eq!(
            store.load_credentials("a@im.bot").unwrap(),
            Some(creds("a@im.bot", 1))
        );
        assert_eq!(store.accounts().unwrap().len(), 2);
        store
            .save_cursor("a@im.bot", &Secret::from("CURSOR"))
            .unwrap();
        assert_eq!(
            store.load_cursor("a@im.bot").unwrap(),
            Some(Secret::from("CURSOR"))
        );
        let mut m = HashMap::new();
        m.insert("u@im.wechat".to_owned(), Secret::from("CTX"));
        store.save_context_tokens("a@im.bot", &m).unwrap();
        assert_eq!(store.load_context_tokens("a@im.bot").unwrap(), m);
        store
            .save_tombstones("a@im.bot", &["m:1".into(), "c:x".into()])
            .unwrap();
        assert_eq!(
            store.load_tombstones("a@im.bot").unwrap(),
            vec!["m:1".to_owned(), "c:x".to_owned()]
        );
        store.remove_account("a@im.bot").unwrap();
        assert_eq!(store.load_credentials("a@im.bot").unwrap(), None);
        assert_eq!(store.load_cursor("a@im.bot").unwrap(), None);
        assert_eq!(store.accounts().unwrap(), vec!["b@im.bot".to_owned()]);
    }

    #[test]
    fn memory_store_round_trips() {
        exercise(&MemoryStore::new());
    }

    #[test]
    fn file_store_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        exercise(&FileStore::new(dir.path()));
    }

    #[test]
    fn normalizes_ids() {
        assert_eq!(
            normalize_account_id("b0f5860fdecb@im.bot"),
            "b0f5860fdecb-im-bot"
        );
        assert_eq!(normalize_account_id("../x"), "---x");
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private_and_no_temp_files_remain() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        store.save_credentials(&creds("a@im.bot", 1)).unwrap();
        store.save_credentials(&creds("a@im.bot", 5)).unwrap();
        let acct = store.account_dir("a@im.bot");
        let mode = fs::metadata(acct.join("credentials.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = fs::metadata(&acct).unwrap().permissions().mode();
        assert_eq!(dmode & 0o777, 0o700);
        let names: Vec<String> = fs::read_dir(&acct)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["credentials.json".to_owned()]);
        // The token is stored (it must be, to log in again) but never in Debug output.
        let c = store.load_credentials("a@im.bot").unwrap().unwrap();
        assert_eq!(c.saved_at_ms, 5);
        assert!(!format!("{c:?}").contains("TOKEN-SECRET"));
    }

    #[test]
    fn temp_names() {
        assert!(is_temp_name(".cursor.json.0123456789abcdef.tmp"));
        assert!(is_temp_name(".dedupe.json.ABCDEF0123456789.tmp"));
        assert!(!is_temp_name("cursor.json"));
        assert!(!is_temp_name(".cursor.json.tmp"));
        assert!(!is_temp_name(".cursor.json.0123.tmp"));
        assert!(!is_temp_name(".cursor.json.0123456789abcdeg.tmp"));
        assert!(!is_temp_name("..0123456789abcdef.tmp"));
        assert!(!is_temp_name("x.cursor.json.0123456789abcdef.tmp"));
    }

    #[test]
    fn stale_temps_are_removed_when_an_account_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        // Opening an account that has no directory yet is fine.
        store.open_account("a@im.bot").unwrap();
        store
            .save_cursor("a@im.bot", &Secret::from("CURSOR"))
            .unwrap();
        let acct = store.account_dir("a@im.bot");
        for n in [
            ".cursor.json.0123456789abcdef.tmp",
            ".dedupe.json.fedcba9876543210.tmp",
        ] {
            fs::write(acct.join(n), b"{\"partial").unwrap();
        }
        fs::write(acct.join("notes.tmp"), b"mine").unwrap();
        store.open_account("a@im.bot").unwrap();
        let mut names: Vec<String> = fs::read_dir(&acct)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec!["cursor.json".to_owned(), "notes.tmp".to_owned()]
        );
        assert_eq!(
            store.load_cursor("a@im.bot").unwrap(),
            Some(Secret::from("CURSOR"))
        );
    }

    /// Each way a state file can be broken, as bytes (`None`: a directory in its place).
    fn corruptions() -> Vec<(&'static str, Option<&'static [u8]>)> {
        vec![
            ("empty", Some(b"")),
            ("truncated", Some(b"{\"version\": 1, \"get_upd")),
            ("wrong JSON type", Some(b"[1, 2, 3]")),
            ("wrong field type", Some(b"{\"version\": 1, \"keys\": 7, \"get_updates_buf\": 7, \"tokens\": 7, \"account_id\": 7}")),
            ("version zero", Some(b"{\"version\": 0}")),
            ("version not a number", Some(b"{\"version\": \"one\"}")),
            ("a directory", None),
        ]
    }

    fn break_file(path: &Path, how: Option<&[u8]>) {
        let _ = fs::remove_file(path);
        match how {
            Some(bytes) => fs::write(path, bytes).unwrap(),
            None => fs::create_dir_all(path.join("inside")).unwrap(),
        }
    }

    fn aside_copies(dir: &Path, name: &str) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{name}.corrupt-"))
            })
            .count()
    }

    #[test]
    fn every_corrupt_file_is_moved_aside_and_read_as_missing() {
        for (way, bytes) in corruptions() {
            let dir = tempfile::tempdir().unwrap();
            let store = FileStore::new(dir.path());
            store.save_credentials(&creds("a@im.bot", 1)).unwrap();
            let acct = store.account_dir("a@im.bot");
            for name in ["cursor.json", "context_tokens.json", "dedupe.json"] {
                break_file(&acct.join(name), bytes);
            }
            assert_eq!(store.load_cursor("a@im.bot").unwrap(), None, "{way}");
            assert!(
                store.load_context_tokens("a@im.bot").unwrap().is_empty(),
                "{way}"
            );
            assert!(
                store.load_tombstones("a@im.bot").unwrap().is_empty(),
                "{way}"
            );
            for name in ["cursor.json", "context_tokens.json", "dedupe.json"] {
                assert_eq!(aside_copies(&acct, name), 1, "{way}: {name}");
                assert!(!acct.join(name).exists(), "{way}: {name}");
            }
            // The store works again.
            store.save_cursor("a@im.bot", &Secret::from("C")).unwrap();
            assert_eq!(
                store.load_cursor("a@im.bot").unwrap(),
                Some(Secret::from("C"))
            );

            // Broken credentials: the account disappears (moved aside), others stay, and a
            // new login can save.
            store.save_credentials(&creds("b@im.bot", 2)).unwrap();
            break_file(&acct.join("credentials.json"), bytes);
            assert_eq!(
                store.accounts().unwrap(),
                vec!["b@im.bot".to_owned()],
                "{way}"
            );
            assert_eq!(aside_copies(&acct, "credentials.json"), 1, "{way}");
            assert_eq!(store.load_credentials("a@im.bot").unwrap(), None, "{way}");
            store.save_credentials(&creds("a@im.bot", 3)).unwrap();
            assert_eq!(
                store.load_credentials("a@im.bot").unwrap(),
                Some(creds("a@im.bot", 3))
            );
        }
    }

    #[test]
    fn a_directory_in_place_of_a_file_is_moved_aside_on_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        let acct = store.account_dir("a@im.bot");
        fs::create_dir_all(acct.join("credentials.json").join("x")).unwrap();
        store.save_credentials(&creds("a@im.bot", 1)).unwrap();
        assert_eq!(
            store.load_credentials("a@im.bot").unwrap(),
            Some(creds("a@im.bot", 1))
        );
        assert_eq!(aside_copies(&acct, "credentials.json"), 1);
    }

    #[test]
    fn a_newer_version_is_an_error_naming_the_file_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        store.save_credentials(&creds("a@im.bot", 1)).unwrap();
        let acct = store.account_dir("a@im.bot");
        fs::write(acct.join("cursor.json"), b"{\"version\": 99, \"x\": 1}").unwrap();
        let e = store.load_cursor("a@im.bot").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Store);
        let msg = e.to_string();
        assert!(
            msg.contains("cursor.json") && msg.contains("newer ilink"),
            "{msg}"
        );
        assert!(msg.contains("upgrade ilink"), "{msg}");
        assert!(acct.join("cursor.json").exists());
        assert_eq!(aside_copies(&acct, "cursor.json"), 0);
    }

    #[test]
    fn files_without_a_version_are_read_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        let acct = store.account_dir("a@im.bot");
        fs::create_dir_all(&acct).unwrap();
        fs::write(
            acct.join("credentials.json"),
            br#"{"account_id":"a@im.bot","token":"T","saved_at_ms":4}"#,
        )
        .unwrap();
        fs::write(acct.join("cursor.json"), br#"{"get_updates_buf":"C"}"#).unwrap();
        fs::write(acct.join("context_tokens.json"), br#"{"u@im.wechat":"X"}"#).unwrap();
        fs::write(acct.join("dedupe.json"), br#"{"keys":["m:1"]}"#).unwrap();
        assert_eq!(store.accounts().unwrap(), vec!["a@im.bot".to_owned()]);
        assert_eq!(
            store.load_cursor("a@im.bot").unwrap(),
            Some(Secret::from("C"))
        );
        assert_eq!(
            store
                .load_context_tokens("a@im.bot")
                .unwrap()
                .get("u@im.wechat"),
            Some(&Secret::from("X"))
        );
        assert_eq!(
            store.load_tombstones("a@im.bot").unwrap(),
            vec!["m:1".to_owned()]
        );
        // Written back with a version.
        store.save_cursor("a@im.bot", &Secret::from("D")).unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&fs::read(acct.join("cursor.json")).unwrap()).unwrap();
        assert_eq!(v["version"], 1);
    }

    #[test]
    fn one_consumer_per_account() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        let first = store.lock_consumer("a@im.bot").unwrap().unwrap();
        let e = store.lock_consumer("a@im.bot").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AccountBusy);
        assert!(
            e.to_string()
                .contains(&format!("process {}", std::process::id())),
            "{e}"
        );
        assert_eq!(store.consumer_pid("a@im.bot"), Some(std::process::id()));
        assert_eq!(store.consumer_pid("b@im.bot"), None);
        // Another account is free.
        let _other = store.lock_consumer("b@im.bot").unwrap().unwrap();
        drop(first);
        let _again = store.lock_consumer("a@im.bot").unwrap().unwrap();
    }

    #[test]
    fn a_broken_lock_or_holder_file_does_not_block_a_consumer() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        let acct = store.account_dir("a@im.bot");
        fs::create_dir_all(acct.join("consumer.lock").join("x")).unwrap();
        fs::write(acct.join("consumer.json"), b"{\"pid\": \"x").unwrap();
        let lock = store.lock_consumer("a@im.bot").unwrap().unwrap();
        assert_eq!(store.consumer_pid("a@im.bot"), Some(std::process::id()));
        assert!(lock.path().unwrap().is_file());
        assert_eq!(aside_copies(&acct, "consumer.lock"), 1);
    }

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(784_111_777), "19941106T084937Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
    }

    #[test]
    fn writable_check() {
        let dir = tempfile::tempdir().unwrap();
        FileStore::new(dir.path().join("new"))
            .check_writable()
            .unwrap();
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        let e = FileStore::new(file.join("under"))
            .check_writable()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Store);
        assert!(e.to_string().contains("cannot be written"), "{e}");
    }
}
