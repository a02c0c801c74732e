//! The [`Client`]: configuration, transport, state store and the accounts of one process.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use ilink_proto::Secret;

use crate::account::{Account, AccountInner};
use crate::config::ClientConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::login::{LoginOutcome, LoginPresenter, LoginResult, run_login};
use crate::send::{SendError, SendErrorKind, SendOutcome};
use crate::store::{Credentials, FileStore, MemoryStore, StateStore};
use crate::transport::Transport;

pub(crate) struct ClientShared {
    pub(crate) transport: Transport,
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) relogin: Option<Arc<dyn LoginPresenter>>,
    pub(crate) cdn: ilink_cdn::CdnClient,
    /// The accounts open in this process. Weak: an [`Account`] holds the client's shared
    /// state, so a strong map would keep both alive forever (a reference cycle). An account
    /// lives as long as someone holds it (a running loop does).
    pub(crate) accounts: Mutex<HashMap<String, Weak<AccountInner>>>,
}

impl ClientShared {
    /// The open account `id`, if it is still alive.
    fn open_account(&self, id: &str) -> Option<Account> {
        let open = self.accounts.lock().ok()?;
        open.get(id)
            .and_then(Weak::upgrade)
            .map(|inner| Account { inner })
    }

    /// Every open account still alive (and forget the others).
    fn open_accounts(&self) -> Vec<Account> {
        let Ok(mut open) = self.accounts.lock() else {
            return Vec::new();
        };
        open.retain(|_, w| w.strong_count() > 0);
        open.values()
            .filter_map(Weak::upgrade)
            .map(|inner| Account { inner })
            .collect()
    }
}

/// The entry point: one per process. Holds the configuration, the HTTP connection pools, the
/// state store, and every [`Account`] opened through it. Cheap to clone.
///
/// See the crate documentation for an example.
#[derive(Clone)]
pub struct Client {
    pub(crate) shared: Arc<ClientShared>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Client`].
#[must_use]
pub struct ClientBuilder {
    config: ClientConfig,
    store: Option<Arc<dyn StateStore>>,
    relogin: Option<Arc<dyn LoginPresenter>>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Use this configuration.
    pub fn config(mut self, config: ClientConfig) -> Self {
        self.config = config;
        self
    }

    /// Keep state in this store (default: a [`FileStore`] in [`FileStore::default_dir`]).
    pub fn store(mut self, store: impl StateStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Keep state in this shared store.
    pub fn shared_store(mut self, store: Arc<dyn StateStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Keep state in files under `dir`.
    pub fn state_dir(self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.store(FileStore::new(dir))
    }

    /// Keep state in memory only.
    pub fn in_memory(self) -> Self {
        self.store(MemoryStore::new())
    }

    /// When an account's session expires (`-14`) and notifystart plus a probe do not revive it,
    /// run a fresh QR login with this presenter (after the application got
    /// [`Update::SessionExpired`](crate::Update::SessionExpired)).
    pub fn relogin_presenter(mut self, presenter: impl LoginPresenter + 'static) -> Self {
        self.relogin = Some(Arc::new(presenter));
        self
    }

    /// Build the client. No I/O happens here.
    pub fn build(self) -> Result<Client> {
        let config = Arc::new(self.config);
        let transport = Transport::new(config.clone())?;
        let mut cdn_config = ilink_cdn::CdnConfig::default()
            .with_base_url(config.cdn_base_url.clone())
            .with_max_download_bytes(config.max_media_bytes)
            .with_upload_backoff(config.delays.upload_retry);
        for host in &config.cdn_allowed_hosts {
            cdn_config = cdn_config.allow_host(host);
        }
        let cdn = ilink_cdn::CdnClient::new(transport.http().clone(), cdn_config);
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(FileStore::new(FileStore::default_dir())));
        Ok(Client {
            shared: Arc::new(ClientShared {
                transport,
                config,
                store,
                relogin: self.relogin,
                cdn,
                accounts: Mutex::new(HashMap::new()),
            }),
        })
    }
}

impl Client {
    /// A builder with the default configuration.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            config: ClientConfig::default(),
            store: None,
            relogin: None,
        }
    }

    /// A client with this configuration and store.
    pub fn new(config: ClientConfig, store: impl StateStore) -> Result<Self> {
        Self::builder().config(config).store(store).build()
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.shared.config
    }

    /// The state store.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.shared.store
    }

    /// The HTTP client used for API calls, to share its connection pool (for example with
    /// `ilink-cdn` for media).
    pub fn http(&self) -> &ilink_http::HttpClient {
        self.shared.transport.http()
    }

    /// The CDN client every account of this client uses for media: the configured CDN base
    /// URL, extra allowed hosts (`cdn_allowed_hosts`) and download cap.
    pub fn cdn(&self) -> &ilink_cdn::CdnClient {
        &self.shared.cdn
    }

    /// Log a bot in with a QR code (docs/protocol.md §6): shows up to 3 QR codes through
    /// `presenter`, asks it for verify codes, follows redirects, and on confirmation saves the
    /// credentials (atomically, mode 0600 with the file store), forgets other local accounts
    /// bound to the same WeChat user, and returns the ready [`Account`].
    ///
    /// Before it asks for a QR code it checks that the store can take the credentials
    /// ([`StateStore::check_writable`]) and fails with [`ErrorKind::Store`] if not. If saving
    /// still fails after the phone confirmed, the result is [`LoginOutcome::Unsaved`] with the
    /// credentials, a copy written to the system's temporary directory (mode 0600), and the
    /// store's error: a confirmed login is never lost.
    pub async fn login(&self, presenter: &dyn LoginPresenter) -> Result<LoginOutcome> {
        self.shared.store.check_writable().await?;
        let tokens = self.local_tokens().await;
        match run_login(&self.shared.transport, presenter, &tokens).await? {
            LoginResult::AlreadyBound => Ok(LoginOutcome::AlreadyBound),
            LoginResult::Confirmed(creds) => match self.add_account(creds.clone()).await {
                Ok(account) => Ok(LoginOutcome::Confirmed(account)),
                Err(error) => {
                    let rescued_to = rescue_credentials(&creds);
                    Ok(LoginOutcome::Unsaved {
                        credentials: creds,
                        error,
                        rescued_to,
                    })
                }
            },
        }
    }

    /// The stored bot tokens, newest account first, at most 10 (`local_token_list`).
    async fn local_tokens(&self) -> Vec<Secret> {
        let ids = self.shared.store.accounts().await.unwrap_or_default();
        let mut tokens = Vec::new();
        for id in ids.iter().rev() {
            if tokens.len() >= ilink_proto::consts::MAX_LOCAL_TOKENS {
                break;
            }
            if let Ok(Some(c)) = self.shared.store.load_credentials(id).await {
                tokens.push(c.token);
            }
        }
        tokens
    }

    /// Save credentials (from a login or elsewhere) and open the account. Other stored accounts
    /// bound to the same WeChat user are removed, as the official client does. An account that
    /// is already open gets the new credentials (and leaves a stale session).
    pub async fn add_account(&self, creds: Credentials) -> Result<Account> {
        let store = &self.shared.store;
        if let Some(user) = &creds.user_id {
            for other in store.accounts().await? {
                if other == creds.account_id {
                    continue;
                }
                if let Some(c) = store.load_credentials(&other).await?
                    && c.user_id.as_deref() == Some(user)
                {
                    tracing::info!(account = %other, "removing an account bound to the same user");
                    store.remove_account(&other).await?;
                    let removed = self
                        .shared
                        .accounts
                        .lock()
                        .ok()
                        .and_then(|mut open| open.remove(&other))
                        .and_then(|w| w.upgrade());
                    if let Some(inner) = removed {
                        Account { inner }.shutdown();
                    }
                }
            }
        }
        store.save_credentials(&creds).await?;
        if let Some(acct) = self.shared.open_account(&creds.account_id) {
            acct.replace_credentials(creds).await?;
            return Ok(acct);
        }
        self.open(creds).await
    }

    async fn open(&self, creds: Credentials) -> Result<Account> {
        if let Some(a) = self.shared.open_account(&creds.account_id) {
            return Ok(a);
        }
        let acct = Account::open(self.shared.clone(), creds).await?;
        let mut open = self
            .shared
            .accounts
            .lock()
            .map_err(|_| Error::new(ErrorKind::Store, "account table lock poisoned"))?;
        // Opened by another task meanwhile: that one wins (one Account per id).
        if let Some(inner) = open.get(acct.id()).and_then(Weak::upgrade) {
            return Ok(Account { inner });
        }
        open.retain(|_, w| w.strong_count() > 0);
        open.insert(acct.id().to_owned(), Arc::downgrade(&acct.inner));
        Ok(acct)
    }

    /// Open a stored account by its id (`…@im.bot`).
    pub async fn account(&self, account_id: &str) -> Result<Account> {
        if let Some(a) = self.shared.open_account(account_id) {
            return Ok(a);
        }
        let creds = self
            .shared
            .store
            .load_credentials(account_id)
            .await?
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotLoggedIn,
                    format!("no stored credentials for account {account_id}"),
                )
            })?;
        self.open(creds).await
    }

    /// Open every stored account, oldest login first.
    pub async fn accounts(&self) -> Result<Vec<Account>> {
        let mut out = Vec::new();
        for id in self.shared.store.accounts().await? {
            out.push(self.account(&id).await?);
        }
        Ok(out)
    }

    /// Send text to a user from whichever open or stored account can reach them
    /// (docs/protocol.md §14.5): the only account, or the one account holding a context token for
    /// the user. Fails with [`SendErrorKind::NoContextToken`] when no account or several do.
    pub async fn send_text(&self, to: &str, text: &str) -> Result<Vec<SendOutcome>, SendError> {
        let accounts = self.accounts().await.map_err(SendError::from_error)?;
        let chosen = if accounts.len() == 1 {
            accounts.into_iter().next()
        } else {
            let mut holders = accounts
                .into_iter()
                .filter(|a| a.context_token(to).is_some());
            match (holders.next(), holders.next()) {
                (Some(a), None) => Some(a),
                (Some(_), Some(_)) => {
                    return Err(SendError::new(
                        SendErrorKind::NoContextToken,
                        format!("several accounts can reach {to}; send through one of them"),
                    ));
                }
                _ => None,
            }
        };
        match chosen {
            Some(a) => a.send_text(to, text).await,
            None => Err(SendError::new(
                SendErrorKind::NoContextToken,
                format!("no account holds a context token for {to}"),
            )),
        }
    }

    /// A shutdown handle for every account of this client: [`ShutdownHandle::shutdown`] is
    /// [`Client::shutdown`], callable from a signal handler task. See
    /// [`ShutdownHandle::on_signals`].
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            client: Arc::downgrade(&self.shared),
        }
    }

    /// Ask every open account to stop: their update streams end after the message being
    /// handled, each committing what was handled and sending notifystop.
    pub fn shutdown(&self) {
        for a in self.shared.open_accounts() {
            a.shutdown();
        }
    }
}

/// Writes confirmed credentials that the store refused to a new file in the system's
/// temporary directory (mode 0600, never replacing a file), in the file store's format.
fn rescue_credentials(creds: &Credentials) -> Option<std::path::PathBuf> {
    let dir = std::env::temp_dir();
    let name = format!(
        "ilink-login-{}-{}.json",
        crate::store::normalize_account_id(&creds.account_id),
        crate::util::now_ms()
    );
    let path = dir.join(name);
    match crate::store::write_rescue(&path, creds) {
        Ok(()) => Some(path),
        Err(e) => {
            tracing::warn!(error = %e, "could not write the credentials anywhere");
            None
        }
    }
}

/// Stops every account of a [`Client`] from another task (a signal handler, a supervisor),
/// without keeping the client alive. From [`Client::shutdown_handle`].
///
/// ```no_run
/// # async fn f(client: ilink_client::Client, account: ilink_client::Account) -> ilink_client::Result<()> {
/// // SIGINT (Ctrl-C) or SIGTERM (`docker stop`, `systemctl stop`): the message in hand
/// // finishes, progress is committed, notifystop is sent, and `run` returns.
/// client.shutdown_handle().on_signals();
/// account.run(|ctx: ilink_client::MessageContext| async move {
///     let _ = ctx.reply("hi").await;
/// }).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    client: std::sync::Weak<ClientShared>,
}

impl ShutdownHandle {
    /// Ask every open account of the client to stop (see [`Client::shutdown`]). Does nothing
    /// once the client is gone.
    pub fn shutdown(&self) {
        if let Some(shared) = self.client.upgrade() {
            Client { shared }.shutdown();
        }
    }

    /// Spawns a task on the current Tokio runtime that calls [`ShutdownHandle::shutdown`] on
    /// the first SIGINT (Ctrl-C) or, on Unix, SIGTERM. A second one ends the process at once
    /// with the shell's code for the signal (130 for SIGINT, 143 for SIGTERM). Must be called
    /// inside a Tokio runtime.
    pub fn on_signals(&self) {
        let handle = self.clone();
        let Some(mut signals) = crate::util::StopSignals::new() else {
            tracing::warn!("cannot listen to stop signals");
            return;
        };
        tokio::spawn(async move {
            let Some(first) = signals.next().await else {
                return;
            };
            tracing::info!(
                signal = first,
                "stop signal received; finishing the message in hand"
            );
            handle.shutdown();
            if let Some(second) = signals.next().await {
                tracing::warn!(signal = second, "second stop signal: exiting now");
                std::process::exit(128 + second);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(id: &str) -> Credentials {
        Credentials {
            account_id: id.to_owned(),
            token: Secret::new("t".to_owned()),
            base_url: None,
            user_id: None,
            saved_at_ms: 1,
        }
    }

    #[tokio::test]
    async fn a_dropped_client_is_freed_with_its_accounts() {
        let client = Client::new(ClientConfig::default(), MemoryStore::new()).unwrap();
        let account = client.add_account(creds("a@im.bot")).await.unwrap();
        let again = client.account("a@im.bot").await.unwrap();
        assert!(Arc::ptr_eq(&account.inner, &again.inner));
        let shared = Arc::downgrade(&client.shared);
        let inner = Arc::downgrade(&account.inner);
        drop((client, account, again));
        assert!(shared.upgrade().is_none());
        assert!(inner.upgrade().is_none());
    }

    #[tokio::test]
    async fn an_account_outlives_its_client_handle_and_reopens_after_drop() {
        let client = Client::new(ClientConfig::default(), MemoryStore::new()).unwrap();
        let account = client.add_account(creds("b@im.bot")).await.unwrap();
        let shared = Arc::downgrade(&client.shared);
        drop(client);
        // The account keeps what it needs to send.
        assert!(shared.upgrade().is_some());
        assert_eq!(account.id(), "b@im.bot");
        let client = Client {
            shared: account.shared().clone(),
        };
        let inner = Arc::downgrade(&account.inner);
        drop(account);
        assert!(inner.upgrade().is_none());
        // Reopened from the store.
        assert_eq!(client.account("b@im.bot").await.unwrap().id(), "b@im.bot");
    }
}
