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

/// A client with the configuration and the file store of `net`.
pub fn client(net: &NetArgs) -> CliResult<Client> {
    Ok(Client::builder()
        .config(config(net))
        .state_dir(state_dir(net))
        .build()?)
}

/// The account to use: `--account`, else the only stored one.
pub fn account(client: &Client, net: &NetArgs) -> CliResult<Account> {
    if let Some(id) = net.account.as_deref() {
        return Ok(client.account(id)?);
    }
    let mut accounts = client.accounts()?;
    match accounts.len() {
        0 => Err(CliError::new(
            Exit::Auth,
            format!(
                "no bot account is logged in (state directory {})",
                state_dir(net).display()
            ),
        )
        .hint("run `ilink login` first (with the same --state-dir and --base-url)")),
        1 => Ok(accounts.remove(0)),
        _ => {
            let ids: Vec<&str> = accounts.iter().map(Account::id).collect();
            Err(CliError::usage(format!(
                "several bot accounts are logged in: {}",
                ids.join(", ")
            ))
            .hint("choose one with --account ID (or ILINK_ACCOUNT)"))
        }
    }
}

/// Stop `account` on Ctrl-C (the message being handled finishes first).
pub fn stop_on_ctrl_c(account: &Account) {
    let account = account.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            account.shutdown();
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
            account: None,
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
    fn sizes_are_readable() {
        assert_eq!(human_size(12), "12 B");
        assert_eq!(human_size(2048), "2.0 KiB");
        assert_eq!(human_size(3 * 1024 * 1024), "3.0 MiB");
    }
}
