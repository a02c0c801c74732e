//! A throwaway PostgreSQL for tests (feature `testing`).
//!
//! [`TestCluster::shared`] gives the cluster of the test process: the server at
//! `$ILINK_TEST_PG` (a base URL such as `postgres://postgres:pw@127.0.0.1:5432/postgres`; each
//! test gets a database of its own under it) when that is set, else a cluster started here
//! from Debian's binaries (`/usr/lib/postgresql/<version>/bin`, or `$ILINK_PG_BIN`): `initdb`
//! into a temporary directory, `postgres` on 127.0.0.1 and a random free port with its Unix
//! socket in that directory, password authentication (SCRAM) over TCP. As root, both run as
//! the `postgres` user (initdb refuses root). The cluster stops and its directory is removed
//! when the test process exits (a small shell keeps the server and stops it when its stdin,
//! a pipe from this process, closes).
//!
//! [`TestCluster::database`] creates a fresh database per test, so tests are isolated and run
//! in parallel; on a server of `$ILINK_TEST_PG` it is dropped again when the
//! [`TestDatabase`] is.
//!
//! Without PostgreSQL (no `$ILINK_TEST_PG`, no binaries): with `$CI` set the helpers panic
//! (a CI run must not pass by skipping); otherwise they print
//! `skipped: no PostgreSQL (...)` on stderr and return `None`.

#![allow(clippy::panic)]

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use ilink_client::{Error, ErrorKind, Result};

use crate::{PgConfig, PgStore};

/// How long a started server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The server's settings: loopback only, durability off (a test cluster is thrown away), room
/// for many parallel tests' pools.
const SERVER_SETTINGS: &[&str] = &[
    "listen_addresses=127.0.0.1",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=400",
    "shared_buffers=32MB",
];

/// The shell that runs the server: it starts `postgres` in the background, waits until its
/// own stdin closes (this process dropped the cluster, or exited), then stops the server
/// (fast shutdown) and removes `$6` if given. Arguments: bin dir, data dir, port, socket dir,
/// log file, directory to remove (or empty), then the server's own arguments.
const KEEPER: &str = r#"
bin=$1 data=$2 port=$3 sock=$4 log=$5 remove=$6
shift 6
"$bin/postgres" -D "$data" -p "$port" -k "$sock" "$@" >>"$log" 2>&1 &
pid=$!
cat >/dev/null
kill -INT "$pid" 2>/dev/null
wait "$pid"
if [ -n "$remove" ]; then rm -rf "$remove"; fi
"#;

/// A PostgreSQL server for tests: the one at `$ILINK_TEST_PG`, or one started here.
pub struct TestCluster {
    base_url: String,
    owned: Option<Owned>,
}

/// A server this process started.
struct Owned {
    /// The temporary directory holding the data, the socket and the log.
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// Run the server as the `postgres` user (we are root).
    as_postgres: bool,
    /// The keeper shell; closing its stdin stops the server.
    keeper: Mutex<Option<Child>>,
    /// A private cluster: dropping this value removes `dir`. The process-wide cluster is never
    /// dropped; its keeper removes `dir` when the process exits.
    private: bool,
    /// The server's `-c` settings.
    settings: Vec<String>,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("port", &self.owned.as_ref().map(|o| o.port))
            .field("dir", &self.owned.as_ref().map(|o| &o.dir))
            .finish_non_exhaustive()
    }
}

/// Prints the skip line (outside the test harness' capture, so it is seen) or, with `$CI`
/// set, panics.
fn unavailable(why: &str) {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!(
            "no PostgreSQL for the tests ({why}); CI is set, so this fails instead of skipping: \
             install PostgreSQL (apt-get install postgresql) or set ILINK_TEST_PG"
        );
    }
    let _ = writeln!(std::io::stderr(), "skipped: no PostgreSQL ({why})");
}

impl TestCluster {
    /// The cluster of this test process (see the module docs), started on first use; `None`
    /// (after printing `skipped: no PostgreSQL`) when there is none, a panic when `$CI` is set.
    pub fn shared() -> Option<&'static TestCluster> {
        static SHARED: OnceLock<std::result::Result<TestCluster, String>> = OnceLock::new();
        let found = SHARED.get_or_init(|| {
            if let Some(url) = std::env::var("ILINK_TEST_PG")
                .ok()
                .filter(|u| !u.trim().is_empty())
            {
                return Ok(TestCluster {
                    base_url: url,
                    owned: None,
                });
            }
            Self::start_local(false, None)
        });
        match found {
            Ok(c) => Some(c),
            Err(why) => {
                unavailable(why);
                None
            }
        }
    }

    /// A cluster of its own, started from the local binaries even when `$ILINK_TEST_PG` is set
    /// (for tests that stop or restart the server); stopped and removed when dropped. `None`
    /// as for [`shared`](Self::shared).
    pub fn start_private() -> Option<TestCluster> {
        match Self::start_local(true, None) {
            Ok(c) => Some(c),
            Err(why) => {
                unavailable(&why);
                None
            }
        }
    }

    /// Like [`start_private`](Self::start_private), with TLS on (`ssl=on`) using the PEM
    /// certificate chain `cert_pem` and private key `key_pem`. The base URL keeps
    /// `sslmode=disable`; change it to test TLS.
    pub fn start_private_tls(cert_pem: &[u8], key_pem: &[u8]) -> Option<TestCluster> {
        match Self::start_local(true, Some((cert_pem, key_pem))) {
            Ok(c) => Some(c),
            Err(why) => {
                unavailable(&why);
                None
            }
        }
    }

    /// The base URL (the server's `postgres` database, as a superuser).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The TCP port of a cluster started here (`None` for `$ILINK_TEST_PG`).
    pub fn port(&self) -> Option<u16> {
        self.owned.as_ref().map(|o| o.port)
    }

    /// Creates a fresh, empty database and returns it (see [`TestDatabase`] for when it is
    /// dropped).
    pub async fn database(&self) -> Result<TestDatabase> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "ilink_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            random_hex(4)
        );
        let admin = admin_client(&self.base_url).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .map_err(|e| crate::error::from_pg("creating a test database", e))?;
        Ok(TestDatabase {
            url: with_dbname(&self.base_url, &name),
            // A cluster started here is removed whole; only a server of $ILINK_TEST_PG, which
            // may outlive this process, needs its test databases dropped one by one.
            admin_url: self.owned.is_none().then(|| self.base_url.clone()),
            name,
        })
    }

    /// Stops the server (a cluster started here only; waits until it is down).
    pub fn stop(&self) -> Result<()> {
        let Some(owned) = &self.owned else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "cannot stop the server at ILINK_TEST_PG",
            ));
        };
        owned.stop_keeper();
        Ok(())
    }

    /// Starts the server again after [`stop`](Self::stop), on the same port and data.
    pub fn start(&self) -> Result<()> {
        let Some(owned) = &self.owned else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "cannot start the server at ILINK_TEST_PG",
            ));
        };
        owned
            .spawn_keeper()
            .map_err(|e| Error::new(ErrorKind::Store, e))?;
        owned
            .wait_ready()
            .map_err(|e| Error::new(ErrorKind::Store, e))
    }

    /// Stops and starts the server.
    pub fn restart(&self) -> Result<()> {
        self.stop()?;
        self.start()
    }

    fn start_local(
        private: bool,
        tls: Option<(&[u8], &[u8])>,
    ) -> std::result::Result<TestCluster, String> {
        let bin = find_bin_dir().ok_or_else(|| {
            "no ILINK_TEST_PG, and no initdb under /usr/lib/postgresql/*/bin or ILINK_PG_BIN"
                .to_owned()
        })?;
        let as_postgres = is_root();
        if as_postgres && !command_ok(Command::new("id").arg("postgres")) {
            return Err("running as root, and there is no postgres user to run the server".into());
        }
        let mut last = String::new();
        // The port is free when chosen; another process may take it before the server binds
        // it: a few tries, each with a fresh cluster.
        for _ in 0..3 {
            match Self::start_once(&bin, as_postgres, private, tls) {
                Ok(c) => return Ok(c),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn start_once(
        bin: &Path,
        as_postgres: bool,
        private: bool,
        tls: Option<(&[u8], &[u8])>,
    ) -> std::result::Result<TestCluster, String> {
        let dir =
            std::env::temp_dir().join(format!("ilink-pg-{}-{}", std::process::id(), random_hex(6)));
        std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let result = (|| {
            let password = random_hex(16);
            let pwfile = dir.join("pw");
            std::fs::write(&pwfile, format!("{password}\n"))
                .map_err(|e| format!("writing {}: {e}", pwfile.display()))?;
            std::fs::create_dir(dir.join("sock")).map_err(|e| format!("creating sock: {e}"))?;
            let mut settings: Vec<String> =
                SERVER_SETTINGS.iter().map(|s| (*s).to_owned()).collect();
            if let Some((cert, key)) = tls {
                let (cert_path, key_path) = (dir.join("server.crt"), dir.join("server.key"));
                write_private(&cert_path, cert)?;
                write_private(&key_path, key)?;
                settings.push("ssl=on".into());
                settings.push(format!("ssl_cert_file={}", cert_path.display()));
                settings.push(format!("ssl_key_file={}", key_path.display()));
            }
            if as_postgres {
                let ok = command_ok(Command::new("chown").arg("-R").arg("postgres:").arg(&dir));
                if !ok {
                    return Err(format!("chown postgres {} failed", dir.display()));
                }
            }
            let mut initdb = as_user(as_postgres, &bin.join("initdb"));
            initdb
                .arg("-D")
                .arg(dir.join("data"))
                .args(["-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"])
                .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
                .arg(format!("--pwfile={}", pwfile.display()));
            let out = initdb
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("running initdb: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "initdb failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            let _ = std::fs::remove_file(&pwfile);
            let port = free_port().map_err(|e| format!("finding a free port: {e}"))?;
            let owned = Owned {
                dir: dir.clone(),
                bin: bin.to_owned(),
                port,
                as_postgres,
                keeper: Mutex::new(None),
                private,
                settings,
            };
            owned.spawn_keeper()?;
            owned.wait_ready()?;
            Ok(TestCluster {
                base_url: format!(
                    "postgres://postgres:{password}@127.0.0.1:{port}/postgres?sslmode=disable"
                ),
                owned: Some(owned),
            })
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result
    }
}

impl Owned {
    fn spawn_keeper(&self) -> std::result::Result<(), String> {
        let mut cmd = as_user(self.as_postgres, Path::new("sh"));
        cmd.arg("-c").arg(KEEPER).arg("sh");
        cmd.arg(&self.bin)
            .arg(self.dir.join("data"))
            .arg(self.port.to_string())
            .arg(self.dir.join("sock"))
            .arg(self.dir.join("server.log"));
        // The process-wide cluster is removed by its keeper when this process exits.
        if self.private {
            cmd.arg("");
        } else {
            cmd.arg(&self.dir);
        }
        for s in &self.settings {
            cmd.arg("-c").arg(s);
        }
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting postgres: {e}"))?;
        if let Ok(mut k) = self.keeper.lock() {
            *k = Some(child);
        }
        Ok(())
    }

    fn wait_ready(&self) -> std::result::Result<(), String> {
        let started = Instant::now();
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p"])
                .arg(self.port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            let exited = self
                .keeper
                .lock()
                .ok()
                .and_then(|mut k| k.as_mut().and_then(|c| c.try_wait().ok().flatten()));
            if exited.is_some() || started.elapsed() > START_TIMEOUT {
                return Err(format!(
                    "postgres did not start on port {}: {}",
                    self.port,
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of the server log, for errors.
    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join("server.log")) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    /// Closes the keeper's stdin (it stops the server) and waits for it.
    fn stop_keeper(&self) {
        let child = self.keeper.lock().ok().and_then(|mut k| k.take());
        if let Some(mut child) = child {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.stop_keeper();
        if self.private {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A database of its own for one test, on a [`TestCluster`]. On the server of
/// `$ILINK_TEST_PG` it is dropped (with `FORCE`, ending its connections) when this value is;
/// on a cluster started here it goes with the cluster.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    /// Where to drop it from when this value is dropped (`None`: with its cluster).
    admin_url: Option<String>,
    name: String,
}

impl TestDatabase {
    /// The database's URL (holds the cluster's password: never log it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A [`PgStore`] on this database.
    pub async fn store(&self) -> Result<PgStore> {
        PgStore::connect(&self.url).await
    }

    /// The settings of this database, to adjust before
    /// [`PgStore::connect_with`](crate::PgStore::connect_with).
    pub fn config(&self) -> Result<PgConfig> {
        PgConfig::from_url(&self.url)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(admin) = self.admin_url.take() else {
            return;
        };
        let name = self.name.clone();
        // Drop runs inside the test's runtime: use a thread with a runtime of its own, and
        // on a multi-threaded runtime let its other tasks move on while this one waits.
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(client) = admin_client(&admin).await {
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await;
                }
            });
        });
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_thread {
            tokio::task::block_in_place(|| handle.join().ok());
        } else {
            let _ = handle.join();
        }
    }
}

/// A fresh database on the shared cluster and a store on it; `None` (skipped) without
/// PostgreSQL. Keep the [`TestDatabase`] alive while the store is used.
pub async fn fresh_store() -> Result<Option<(TestDatabase, PgStore)>> {
    let Some(cluster) = TestCluster::shared() else {
        return Ok(None);
    };
    let db = cluster.database().await?;
    let store = db.store().await?;
    Ok(Some((db, store)))
}

/// A plain connection (no pool, no schema) to `url`, its driver task spawned.
async fn admin_client(url: &str) -> Result<tokio_postgres::Client> {
    let config = PgConfig::from_url(url)?;
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(config.rustls_config()?);
    let (client, connection) = config
        .inner
        .connect(tls)
        .await
        .map_err(|e| crate::error::from_pg("connecting to the test cluster", e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// `url` with its database replaced by `name` (a `postgres://` URL, or libpq's `key=value`).
pub fn with_dbname(url: &str, name: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return format!("{url} dbname={name}");
    };
    let after = scheme_end + 3;
    let rest = url.get(after..).unwrap_or("");
    let query_at = rest.find('?').map_or(url.len(), |i| after + i);
    let path_at = rest
        .get(..query_at - after)
        .and_then(|auth| auth.find('/'))
        .map_or(query_at, |i| after + i);
    format!(
        "{}/{name}{}",
        url.get(..path_at).unwrap_or(url),
        url.get(query_at..).unwrap_or("")
    )
}

fn find_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ILINK_PG_BIN") {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").is_file().then_some(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("postgres").is_file())
                .then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program`, run as the `postgres` user when `as_postgres`.
fn as_user(as_postgres: bool, program: &Path) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn command_ok(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Writes `bytes` to a new file `path` with mode 0600 (a TLS key must not be readable by others).
fn write_private(path: &Path, bytes: &[u8]) -> std::result::Result<(), String> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    opts.open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if getrandom::fill(&mut buf).is_err() {
        // Unique enough for a temporary name.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        return format!("{nanos:x}");
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dbname_replacement() {
        assert_eq!(
            with_dbname("postgres://u:p@h:5/postgres?sslmode=disable", "x"),
            "postgres://u:p@h:5/x?sslmode=disable"
        );
        assert_eq!(with_dbname("postgres://u@h:5", "x"), "postgres://u@h:5/x");
        assert_eq!(
            with_dbname("postgres://u@h?a=b", "x"),
            "postgres://u@h/x?a=b"
        );
        assert_eq!(with_dbname("host=h user=u", "x"), "host=h user=u dbname=x");
    }
}
