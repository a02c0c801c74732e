//! Shared setup of network commands: configuration, the client, the account.

use std::path::PathBuf;

use ilink_client::{Account, Client, ClientConfig, FileStore};

use crate::NetArgs;
use crate::error::{CliError, CliResult, Exit};

/// The client configuration the flags and environment ask for.
pub fn config(net: &NetArgs) -> ClientConfig {
    let mut config = match net.base_url.as_deref().filter(|u| !u.trim().is_empty()) {
        Some(base) => ClientConfig::for_server(base.trim()),
        None => ClientConfig::default(),
    };
    if let Some(cdn) = net.cdn_base_url.as_deref().filter(|u| !u.trim().is_empty()) {
        config = config.with_cdn_base_url(cdn.trim().trim_end_matches('/'));
    }
    config
}

/// The state directory in use.
pub fn state_dir(net: &NetArgs) -> PathBuf {
    net.state_dir
        .clone()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(FileStore::default_dir)
}

/// A client with the configuration and the store of `net`.
pub async fn client(net: &NetArgs) -> CliResult<Client> {
    client_with(net, config(net)).await
}

/// A client with `config` and the store of `net` (`--store`, else the state directory).
pub async fn client_with(net: &NetArgs, config: ClientConfig) -> CliResult<Client> {
    let store = crate::fleetcmd::open_store(net).await?;
    Ok(Client::builder()
        .config(config)
        .shared_store(store)
        .build()?)
}

/// Validates a base URL option: `http://` or `https://`, a host, no spaces.
pub fn parse_url(s: &str) -> Result<String, String> {
    let t = s.trim();
    let rest = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .ok_or_else(|| format!("{t:?} is not a URL: it must start with http:// or https://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_name = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if host_name.is_empty() || host_name.starts_with(':') {
        return Err(format!("{t:?} is not a URL: it has no host"));
    }
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{t:?} is not a URL: it contains spaces"));
    }
    if let Some((_, port)) = host_name.rsplit_once(':')
        && !host_name.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Err(format!(
            "{t:?} is not a URL: the port {port:?} is not a number"
        ));
    }
    Ok(t.to_owned())
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim().trim_end_matches('/') == b.trim().trim_end_matches('/')
}

fn no_account(net: &NetArgs) -> CliError {
    let place = match crate::fleetcmd::store_url(net) {
        crate::fleetcmd::StoreUrl::File(dir) => format!("state directory {}", dir.display()),
        other => format!("store {other}"),
    };
    CliError::new(Exit::Auth, format!("no bot account is logged in ({place})"))
        .hint("run `ilink login` first (with the same --state-dir or --store, and --base-url)")
}

/// Applies `--base-url` / `ILINK_BASE_URL` to a saved account: if it differs from the saved
/// URL, the account uses it from now on and it is saved, with a notice.
async fn apply_base_url(account: &Account, net: &NetArgs) -> CliResult<Account> {
    let Some(flag) = net.base_url.as_deref().filter(|_| net.base_url_given) else {
        return Ok(account.clone());
    };
    let saved = account.base_url()?;
    if same_url(flag, &saved) {
        return Ok(account.clone());
    }
    let mut creds = account.credentials()?;
    creds.base_url = Some(flag.trim().to_owned());
    account.replace_credentials(creds).await?;
    eprintln!(
        "ilink: note: account {} now uses the base URL {flag} (was {saved}); saved",
        account.id()
    );
    Ok(account.clone())
}

/// The account to use: `--account`, else the only stored one.
pub async fn account(client: &Client, net: &NetArgs) -> CliResult<Account> {
    if let Some(id) = net.account.as_deref() {
        return apply_base_url(&client.account(id).await?, net).await;
    }
    let mut accounts = client.accounts().await?;
    match accounts.len() {
        0 => Err(no_account(net)),
        1 => apply_base_url(&accounts.remove(0), net).await,
        _ => {
            let ids: Vec<&str> = accounts.iter().map(Account::id).collect();
            Err(CliError::usage(format!(
                "several bot accounts are logged in: {}",
                ids.join(", ")
            ))
            .hint("choose one with --account ID (or ILINK_ACCOUNT); `ilink accounts` lists them"))
        }
    }
}

/// The account to send to `to` from, as the library routes: `--account`, else the only
/// stored one, else the one account holding a context token for `to`.
pub async fn account_for(client: &Client, net: &NetArgs, to: &str) -> CliResult<Account> {
    if net.account.is_some() {
        return account(client, net).await;
    }
    let accounts = client.accounts().await?;
    if accounts.len() <= 1 {
        return account(client, net).await;
    }
    let holders: Vec<Account> = accounts
        .into_iter()
        .filter(|a| a.context_token(to).is_some())
        .collect();
    match holders.as_slice() {
        [one] => apply_base_url(one, net).await,
        [] => Err(CliError::new(
            Exit::NotDelivered,
            format!(
                "no logged-in bot account can send to {to}: none holds a context token for them"
            ),
        )
        .hint(
            "the user must write to the bot first; run `ilink tail` or `ilink echo` once so \
             the bot sees their message",
        )),
        several => {
            let ids: Vec<&str> = several.iter().map(Account::id).collect();
            Err(CliError::usage(format!(
                "several bot accounts can send to {to}: {}",
                ids.join(", ")
            ))
            .hint("choose one with --account ID (or ILINK_ACCOUNT)"))
        }
    }
}

pub use ilink_client::StopSignals;

/// Waits for the first SIGINT or SIGTERM of `signals` (forever if signals cannot be
/// listened to). Create `signals` before announcing that the process runs.
pub async fn wait_for_stop_signal(signals: Option<StopSignals>) {
    match signals {
        Some(mut s) => {
            s.next().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// Stop `accounts` gracefully on the first SIGINT (Ctrl-C) or SIGTERM (`docker stop`,
/// `systemctl stop`): the message in hand finishes, progress is committed, notifystop is sent.
/// A second signal ends the process at once (exit 130 or 143).
pub fn stop_on_signals(accounts: &[Account]) {
    let accounts = accounts.to_vec();
    let Some(mut signals) = StopSignals::new() else {
        tracing::warn!("cannot listen to stop signals; they end the process at once");
        return;
    };
    tokio::spawn(async move {
        if signals.next().await.is_none() {
            return;
        }
        eprintln!(
            "ilink: stopping: finishing the message in hand (a second Ctrl-C or SIGTERM stops at once)"
        );
        accounts.iter().for_each(Account::shutdown);
        if let Some(sig) = signals.next().await {
            eprintln!("ilink: stopped at once");
            std::process::exit(128 + sig);
        }
    });
}

/// A human-readable size.
pub fn human_size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KIB {
        format!("{bytes} B")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else {
        format!("{:.1} MiB", b / KIB / KIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(base: Option<&str>, cdn: Option<&str>) -> NetArgs {
        NetArgs {
            base_url: base.map(str::to_owned),
            cdn_base_url: cdn.map(str::to_owned),
            state_dir: None,
            store: None,
            account: None,
            base_url_given: base.is_some(),
        }
    }

    #[test]
    fn flags_set_the_api_qr_and_cdn_urls() {
        let c = config(&net(
            Some("http://127.0.0.1:9/"),
            Some("http://127.0.0.1:9/c2c/"),
        ));
        assert_eq!(c.default_base_url, "http://127.0.0.1:9/");
        assert_eq!(c.qr_base_url, "http://127.0.0.1:9/");
        assert_eq!(c.redirect_scheme, "http");
        assert_eq!(c.cdn_base_url, "http://127.0.0.1:9/c2c");
        let d = config(&net(None, None));
        assert_eq!(d.default_base_url, ClientConfig::default().default_base_url);
    }

    #[test]
    fn urls_are_validated() {
        for ok in [
            "http://127.0.0.1:9/",
            "https://ilinkai.weixin.qq.com",
            " https://h/x ",
            "http://[::1]:80/",
        ] {
            assert!(parse_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "not-a-url",
            "ftp://h/",
            "http://",
            "http:///x",
            "http://h:port/",
            "http://a b/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_are_readable() {
        assert_eq!(human_size(12), "12 B");
        assert_eq!(human_size(2048), "2.0 KiB");
        assert_eq!(human_size(3 * 1024 * 1024), "3.0 MiB");
    }
}
