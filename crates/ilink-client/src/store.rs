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
    /// Store the dedupe tombstones.
    fn save_tombstones(&self, account: &str, keys: &[String]) -> Result<()>;

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
/// `credentials.json`, `cursor.json`, `context_tokens.json` and `dedupe.json` (and the
/// append-only outbox journal `outbox.jsonl`, see [`crate::outbox`]). Every file is
/// written atomically (a temporary file `.<name>.<random>.tmp` in the same directory, synced,
/// then renamed over the old one) with mode 0600; directories are created with mode 0700.
/// Temporary files left by a crash are removed when a client opens the account
/// ([`StateStore::open_account`]), so a bot that crashes often does not grow its directory.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct CursorFile {
    get_updates_buf: Secret,
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

    fn read_json<T: serde::de::DeserializeOwned>(&self, path: &Path) -> Result<Option<T>> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::new(
                    ErrorKind::Store,
                    format!("{} is not valid state JSON", path.display()),
                )
                .with_source(e)
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::store(format!("reading {}", path.display()), e)),
        }
    }

    fn write_json<T: Serialize>(&self, account: &str, file: &str, value: &T) -> Result<()> {
        let dir = self.account_dir(account);
        create_private_dir(&dir)?;
        let bytes = serde_json::to_vec_pretty(value)
            .map_err(|e| Error::new(ErrorKind::Store, "encoding state").with_source(e))?;
        write_atomic(&dir.join(file), &bytes)
    }
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
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.{}.tmp",
        crate::util::random_hex(TEMP_RANDOM_HEX / 2)
    ));
    let result = (|| -> std::io::Result<()> {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        #[cfg(unix)]
        if let Ok(d) = fs::File::open(dir) {
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
            let path = entry.path().join("credentials.json");
            if let Some(c) = self.read_json::<Credentials>(&path)? {
                found.push((c.saved_at_ms, c.account_id));
            }
        }
        found.sort();
        Ok(found.into_iter().map(|(_, a)| a).collect())
    }
    fn load_credentials(&self, account: &str) -> Result<Option<Credentials>> {
        self.read_json(&self.account_dir(account).join("credentials.json"))
    }
    fn save_credentials(&self, creds: &Credentials) -> Result<()> {
        self.write_json(&creds.account_id, "credentials.json", creds)
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
        Ok(self
            .read_json::<CursorFile>(&self.account_dir(account).join("cursor.json"))?
            .map(|c| c.get_updates_buf))
    }
    fn save_cursor(&self, account: &str, cursor: &Secret) -> Result<()> {
        self.write_json(
            account,
            "cursor.json",
            &CursorFile {
                get_updates_buf: cursor.clone(),
            },
        )
    }
    fn load_context_tokens(&self, account: &str) -> Result<HashMap<String, Secret>> {
        Ok(self
            .read_json(&self.account_dir(account).join("context_tokens.json"))?
            .unwrap_or_default())
    }
    fn save_context_tokens(&self, account: &str, tokens: &HashMap<String, Secret>) -> Result<()> {
        let sorted: BTreeMap<&String, &Secret> = tokens.iter().collect();
        self.write_json(account, "context_tokens.json", &sorted)
    }
    fn load_tombstones(&self, account: &str) -> Result<Vec<String>> {
        Ok(self
            .read_json::<TombstoneFile>(&self.account_dir(account).join("dedupe.json"))?
            .unwrap_or_default()
            .keys)
    }
    fn save_tombstones(&self, account: &str, keys: &[String]) -> Result<()> {
        self.write_json(
            account,
            "dedupe.json",
            &TombstoneFile {
                keys: keys.to_vec(),
            },
        )
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

    #[test]
    fn corrupt_file_is_a_store_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        let acct = store.account_dir("a@im.bot");
        fs::create_dir_all(&acct).unwrap();
        fs::write(acct.join("cursor.json"), b"{not json").unwrap();
        let e = store.load_cursor("a@im.bot").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Store);
    }
}
