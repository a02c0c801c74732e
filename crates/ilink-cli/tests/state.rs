//! State that survives real use, and the command line's conventions, through the `ilink`
//! binary against ilink-sim on loopback: corrupt state files, the per-account consumer lock,
//! SIGTERM, login robustness, `-14` reload, base URLs, the error model and its exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use assert_cmd::Command as AssertCommand;
use common::*;
use ilink_client::{Credentials, FileStore, Secret, StateStore};
use ilink_sim::{BotAccount, Endpoint, Fault, QrStep, Sim, SimConfig};
use serde_json::Value;
use tokio::io::AsyncBufReadExt as _;

const USER: &str = "pat@im.wechat";
const MD: &str = "**Echo**: x ![img](http://x/y.png) *斜体*";

/// A bot whose state holds every file: credentials, a cursor, context tokens, dedupe.
async fn seeded_with_token(sim: &Sim, dir: &Path) -> BotAccount {
    let bot = seed(sim, dir).await;
    sim.user(USER).send_text(&bot.bot_id, "hi").unwrap();
    let o = ilink(sim, dir, &["tail", "--max", "1"], None).await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    bot
}

/// Each way a state file gets broken (`None`: a directory in its place).
fn corruptions() -> Vec<(&'static str, Option<&'static [u8]>)> {
    vec![
        ("empty", Some(b"")),
        ("truncated", Some(b"{\"version\": 1, \"get_upd")),
        ("wrong JSON type", Some(b"[\"a\", \"b\"]")),
        ("wrong version", Some(b"{\"version\": -3}")),
        ("a directory", None),
    ]
}

fn break_file(path: &Path, how: Option<&[u8]>) {
    let _ = std::fs::remove_file(path);
    match how {
        Some(bytes) => std::fs::write(path, bytes).unwrap(),
        None => std::fs::create_dir_all(path.join("x")).unwrap(),
    }
}

fn aside_copies(dir: &Path, name: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{name}.corrupt-")))
        .collect()
}

/// Spawns `ilink echo` and waits until it says it runs. Returns the child and its stderr.
async fn spawn_echo(
    sim: &Sim,
    dir: &Path,
    extra: &[&str],
) -> (
    tokio::process::Child,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
) {
    let mut c = command();
    c.args(net_args(sim, dir))
        .arg("echo")
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("echo did not start")
            .unwrap()
            .expect("echo ended before it ran");
        if line.contains("is running") {
            break;
        }
    }
    (child, lines)
}

fn signal(child: &tokio::process::Child, sig: &str) {
    let pid = child.id().unwrap();
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

async fn rest(
    mut lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
) -> String {
    let mut out = String::new();
    while let Ok(Some(l)) = lines.next_line().await {
        out.push_str(&l);
        out.push('\n');
    }
    out
}

fn notifystops(sim: &Sim) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.endpoint == Some(Endpoint::NotifyStop))
        .count()
}

// ------------------------------------------------------------------------- state files

/// The dedupe tombstones of an account as the journal holds them (torn lines skipped).
fn journal_keys(acct: &Path) -> Vec<String> {
    let bytes = std::fs::read(acct.join("dedupe.journal")).unwrap();
    bytes
        .split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice::<String>(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_cursor_tokens_and_dedupe_files_are_moved_aside_and_tail_goes_on() {
    let sim = sim().await;
    // The versioned files: the cursor, the context tokens, and the dedupe file of earlier
    // versions (`dedupe.json`, read before the journal and written no more: a leftover one
    // is what can be corrupt).
    for name in ["cursor.json", "context_tokens.json", "dedupe.json"] {
        let legacy = name == "dedupe.json";
        for (way, bytes) in corruptions() {
            let dir = tempfile::tempdir().unwrap();
            let bot = seeded_with_token(&sim, dir.path()).await;
            let acct = FileStore::new(dir.path()).account_dir(&bot.bot_id);
            if legacy {
                assert!(!acct.join(name).exists(), "{name} is written no more");
                assert!(acct.join("dedupe.journal").is_file(), "the journal exists");
            } else {
                assert!(acct.join(name).is_file(), "{name} exists before");
            }
            break_file(&acct.join(name), bytes);
            sim.user(USER).send_text(&bot.bot_id, "again").unwrap();
            let o = ilink(&sim, dir.path(), &["tail", "--max", "1"], None).await;
            let err = text(&o.stderr);
            assert_eq!(code(&o), 0, "{name} {way}: {err}");
            assert!(text(&o.stdout).contains("\"again\""), "{name} {way}");
            let aside = aside_copies(&acct, name);
            assert_eq!(aside.len(), 1, "{name} {way}: {aside:?}");
            // The warning names the file, where it went and what was lost; once, without
            // colour codes in a redirected stderr.
            assert!(
                err.contains(&format!("{name} is corrupt")),
                "{name} {way}: {err}"
            );
            assert!(err.contains(&aside[0]), "{name} {way}: {err}");
            assert!(err.contains("lost"), "{name} {way}: {err}");
            assert_eq!(err.matches("is corrupt").count(), 1, "{name} {way}: {err}");
            assert!(!err.contains('\u{1b}'), "no colour codes: {err:?}");
            if legacy {
                // Not written again: the journal holds the tombstones, the new message's too.
                assert!(!acct.join(name).exists(), "{name} {way}");
                let keys = journal_keys(&acct);
                assert_eq!(
                    keys.iter().filter(|k| k.starts_with("m:")).count(),
                    2,
                    "{name} {way}: {keys:?}"
                );
            } else {
                // The file is valid again.
                let v: Value =
                    serde_json::from_slice(&std::fs::read(acct.join(name)).unwrap()).unwrap();
                assert_eq!(v["version"], 1, "{name} {way}");
            }
        }
    }

    // The journal, `dedupe.journal`: a damaged line (torn by a crash, or foreign bytes) is
    // skipped and loses only itself: no warning, nothing moved aside, every other tombstone
    // kept, the next append on a line of its own. A directory in its place is moved aside
    // with the warning.
    let name = "dedupe.journal";
    for (way, bytes) in corruptions() {
        let dir = tempfile::tempdir().unwrap();
        let bot = seeded_with_token(&sim, dir.path()).await;
        let acct = FileStore::new(dir.path()).account_dir(&bot.bot_id);
        let path = acct.join(name);
        assert!(path.is_file(), "{name} exists before");
        let before = journal_keys(&acct);
        // One tombstone per strong key of the message: its message_id among them.
        assert_eq!(
            before.iter().filter(|k| k.starts_with("m:")).count(),
            1,
            "{before:?}"
        );
        match bytes {
            Some(bad) => {
                // A foreign line first, the journal, then a torn append (no newline).
                let good = std::fs::read(&path).unwrap();
                std::fs::write(&path, [bad, b"\n", &good, bad].concat()).unwrap();
                assert_eq!(journal_keys(&acct), before, "{way}");
            }
            None => break_file(&path, None),
        }
        sim.user(USER).send_text(&bot.bot_id, "again").unwrap();
        let o = ilink(&sim, dir.path(), &["tail", "--max", "1"], None).await;
        let err = text(&o.stderr);
        assert_eq!(code(&o), 0, "{name} {way}: {err}");
        let out = text(&o.stdout);
        assert!(out.contains("\"again\""), "{name} {way}: {out}");
        assert!(!out.contains("\"hi\""), "{name} {way}: {out}");
        assert!(!err.contains('\u{1b}'), "no colour codes: {err:?}");
        assert!(path.is_file(), "{name} {way}: a file again");
        let after = journal_keys(&acct);
        assert_eq!(
            after.iter().filter(|k| k.starts_with("m:")).count(),
            if bytes.is_some() { 2 } else { 1 },
            "{name} {way}: {after:?}"
        );
        let aside = aside_copies(&acct, name);
        if bytes.is_some() {
            assert!(
                before.iter().all(|k| after.contains(k)),
                "{name} {way}: {before:?} -> {after:?}"
            );
            assert!(aside.is_empty(), "{name} {way}: {aside:?}");
            assert!(!err.contains(name), "{name} {way}: no warning: {err}");
        } else {
            assert_eq!(aside.len(), 1, "{name} {way}: {aside:?}");
            assert!(
                err.contains(&format!("{name} was a directory")),
                "{name} {way}: {err}"
            );
            assert!(err.contains(&aside[0]), "{name} {way}: {err}");
            assert!(err.contains("lost"), "{name} {way}: {err}");
            assert_eq!(
                err.matches("moved it aside").count(),
                1,
                "{name} {way}: {err}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_dedupe_file_does_not_stop_send_and_quiet_hides_the_warning() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = seeded_with_token(&sim, dir.path()).await;
    let acct = FileStore::new(dir.path()).account_dir(&bot.bot_id);
    break_file(&acct.join("dedupe.json"), Some(b"{\"keys\": [1"));
    let o = ilink(
        &sim,
        dir.path(),
        &["-q", "send", "--to", USER, "--text", "still here"],
        None,
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(text(&o.stderr), "", "-q: no warnings");
    assert_eq!(aside_copies(&acct, "dedupe.json").len(), 1);
    // The doctor points at the moved-aside copy.
    let o = ilink(&sim, dir.path(), &["doctor"], None).await;
    let out = text(&o.stdout);
    assert!(
        out.contains("warn  state files: 1 corrupt file(s)"),
        "{out}"
    );
    assert!(out.contains("dedupe.json.corrupt-"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_of_a_newer_ilink_is_a_clear_error_and_is_kept() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = seeded_with_token(&sim, dir.path()).await;
    let acct = FileStore::new(dir.path()).account_dir(&bot.bot_id);
    let newer = b"{\"version\": 7, \"get_updates_buf\": \"x\"}";
    std::fs::write(acct.join("cursor.json"), newer).unwrap();
    let o = ilink(&sim, dir.path(), &["tail", "--max", "1"], None).await;
    let err = text(&o.stderr);
    assert_eq!(code(&o), 1, "{err}");
    assert!(err.starts_with("ilink: error: "), "{err}");
    assert!(
        err.contains("cursor.json") && err.contains("newer ilink"),
        "{err}"
    );
    assert!(err.contains("upgrade ilink"), "{err}");
    assert_eq!(std::fs::read(acct.join("cursor.json")).unwrap(), newer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_credentials_never_block_login() {
    let sim = sim().await;
    for (way, bytes) in corruptions() {
        let dir = tempfile::tempdir().unwrap();
        let bot = seed(&sim, dir.path()).await;
        let acct = FileStore::new(dir.path()).account_dir(&bot.bot_id);
        break_file(&acct.join("credentials.json"), bytes);
        // Other commands: the account is gone (moved aside, with a warning), log in again.
        let o = ilink(&sim, dir.path(), &["tail"], None).await;
        let err = text(&o.stderr);
        assert_eq!(code(&o), 3, "{way}: {err}");
        assert!(err.contains("credentials.json is corrupt"), "{way}: {err}");
        assert!(err.contains("run `ilink login` again"), "{way}: {err}");
        assert!(
            err.contains("ilink: login needed: no bot account"),
            "{way}: {err}"
        );
        assert_eq!(aside_copies(&acct, "credentials.json").len(), 1, "{way}");
        // Broken again, then a login: it works.
        break_file(&acct.join("credentials.json"), bytes);
        sim.qr().script(vec![QrStep::Confirm {
            user_id: format!("u-{}@im.wechat", way.len()),
        }]);
        let o = ilink(&sim, dir.path(), &["login"], None).await;
        assert_eq!(code(&o), 0, "{way}: {}", text(&o.stderr));
        assert!(text(&o.stdout).contains("Logged in as"), "{way}");
    }
}

// ------------------------------------------------------------------------- login

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_into_an_unwritable_state_dir_fails_before_the_qr_code() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    sim.qr().script(vec![QrStep::Confirm {
        user_id: USER.into(),
    }]);
    let o = ilink(&sim, &file.join("state"), &["login"], None).await;
    let err = text(&o.stderr);
    assert_eq!(code(&o), 1, "{err}");
    assert!(
        err.starts_with("ilink: error: cannot log in: the state directory"),
        "{err}"
    );
    assert!(err.contains("hint: "), "{err}");
    assert!(
        !err.contains("Scan with WeChat"),
        "no QR code was shown: {err}"
    );
    assert!(sim.qr().sessions().is_empty(), "no QR code was asked for");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_reports_a_server_that_stops_answering() {
    let sim = sim().await;
    sim.qr().script(vec![QrStep::Scan]);
    sim.inject_fault(Endpoint::GetQrcodeStatus, Fault::Status(502), 50);
    let dir = tempfile::tempdir().unwrap();
    let o = ilink(&sim, dir.path(), &["login"], None).await;
    let err = text(&o.stderr);
    assert_eq!(code(&o), 3, "{err}");
    assert!(
        err.contains("did not answer properly (1 time(s) in a row)"),
        "{err}"
    );
    assert!(err.contains("ilink: login needed: "), "{err}");
    assert!(err.contains("stopped answering"), "{err}");
    assert!(err.contains("10 status polls failed in a row"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_codes_are_sent_without_spaces() {
    let sim = sim().await;
    sim.qr().script(vec![
        QrStep::Scan,
        QrStep::NeedVerifyCode {
            code: "482913".into(),
        },
        QrStep::Confirm {
            user_id: USER.into(),
        },
    ]);
    let dir = tempfile::tempdir().unwrap();
    // A letter first (asked again, never sent), then the code with a space.
    let o = ilink(&sim, dir.path(), &["login"], Some("48x\n482 913\n")).await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let sent: Vec<String> = sim
        .requests()
        .iter()
        .filter(|r| r.endpoint == Some(Endpoint::GetQrcodeStatus))
        .map(|r| r.query.clone())
        .filter(|q| q.contains("verify"))
        .collect();
    assert!(!sent.is_empty());
    assert!(sent.iter().all(|q| q.contains("482913")), "{sent:?}");
    assert!(
        !sent.iter().any(|q| q.contains("%20") || q.contains("48x")),
        "{sent:?}"
    );
}

// ------------------------------------------------------------------------- one consumer

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_consumer_is_refused_and_sigterm_stops_gracefully() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = seeded_with_token(&sim, dir.path()).await;
    let (child, lines) = spawn_echo(&sim, dir.path(), &[]).await;
    let pid = child.id().unwrap();
    for cmd in [&["tail"][..], &["echo"]] {
        let o = ilink(&sim, dir.path(), cmd, None).await;
        let err = text(&o.stderr);
        assert_eq!(code(&o), 5, "{cmd:?}: {err}");
        assert!(err.starts_with("ilink: account busy: "), "{err}");
        // The lease holder is named: `host:pid:random` by default.
        assert!(err.contains(&format!(":{pid}:")), "{pid}: {err}");
        assert!(err.contains("hint: "), "{err}");
        assert!(!err.contains("is running"), "{err}");
    }
    // Read-only commands need no lock.
    let o = ilink(
        &sim,
        dir.path(),
        &["send", "--to", USER, "--text", "meanwhile"],
        None,
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let o = ilink(&sim, dir.path(), &["accounts"], None).await;
    assert!(
        text(&o.stdout).contains(&format!("consumed by process {pid}")),
        "{}",
        text(&o.stdout)
    );
    let o = ilink(&sim, dir.path(), &["logout"], None).await;
    assert_eq!(code(&o), 5, "{}", text(&o.stderr));

    // A message in hand, then SIGTERM: answered, committed, notifystop, exit 0.
    sim.user(USER).send_text(&bot.bot_id, "last").unwrap();
    sim.wait_for_delivered(USER, 2, Duration::from_secs(10))
        .await
        .unwrap();
    let before = notifystops(&sim);
    signal(&child, "-TERM");
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let err = rest(lines).await;
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("stopping"), "{err}");
    assert_eq!(notifystops(&sim), before + 1);
    // Nothing handled comes again: a new consumer starts clean, and the lock is free.
    sim.user(USER).send_text(&bot.bot_id, "after").unwrap();
    let o = ilink(&sim, dir.path(), &["tail", "--max", "1"], None).await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("\"after\"") && !out.contains("\"last\""),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_at_once() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    seed(&sim, dir.path()).await;
    let (child, mut lines) = spawn_echo(&sim, dir.path(), &[]).await;
    // notifystop hangs: the graceful stop cannot finish.
    sim.inject_fault(
        Endpoint::NotifyStop,
        Fault::Latency(Duration::from_secs(60)),
        1,
    );
    // Wait until it polls (a stop before its first poll has no notifystop to send).
    while !sim
        .requests()
        .iter()
        .any(|r| r.endpoint == Some(Endpoint::GetUpdates))
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signal(&child, "-INT");
    // Wait until the stop has begun.
    loop {
        let line = lines.next_line().await.unwrap().expect("echo ended");
        if line.contains("stopping") {
            break;
        }
    }
    signal(&child, "-TERM");
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(143));
}

// ------------------------------------------------------------------------- -14 reload

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_bot_uses_a_newer_login_saved_while_it_ran() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = seed(&sim, dir.path()).await;
    let (child, lines) = spawn_echo(&sim, dir.path(), &["--max", "1"]).await;
    // A newer login of the account is saved (the sim gives a new bot the new token), then
    // the old token goes stale.
    let newer = sim.create_bot();
    FileStore::new(dir.path())
        .save_credentials(&Credentials {
            account_id: bot.bot_id.clone(),
            token: Secret::new(newer.token.clone()),
            base_url: Some(sim.base_url()),
            user_id: None,
            saved_at_ms: 2,
        })
        .await
        .unwrap();
    assert!(sim.expire_token(&bot.bot_id));
    sim.user(USER).send_text(&newer.bot_id, "ping").unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let err = rest(lines).await;
    assert_eq!(out.status.code(), Some(0), "{err}");
    let d = sim.delivered_to(USER);
    assert_eq!(d.len(), 1, "{err}");
    assert_eq!(d[0].text(), Some("echo: ping"));
}

// ------------------------------------------------------------------------- base URL

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_url_is_validated_and_used_and_saved_for_a_saved_account() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = seeded_with_token(&sim, dir.path()).await;
    let mut c = command();
    c.args(["--base-url", "not-a-url", "--state-dir"])
        .arg(dir.path())
        .args(["send", "--to", USER, "--text", "x"]);
    let o = run(c, None).await;
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("not a URL"), "{}", text(&o.stderr));

    let mut c = command();
    c.args(["--base-url", "http://127.0.0.1:1/", "--state-dir"])
        .arg(dir.path())
        .args(["send", "--to", USER, "--text", "x"]);
    let o = run(c, None).await;
    let err = text(&o.stderr);
    assert_eq!(code(&o), 1, "{err}");
    assert!(
        err.contains("now uses the base URL http://127.0.0.1:1/"),
        "{err}"
    );
    assert!(
        sim.delivered_to(USER).is_empty(),
        "the saved server was not used"
    );
    let saved = FileStore::new(dir.path())
        .load_credentials(&bot.bot_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(saved.base_url.as_deref(), Some("http://127.0.0.1:1/"));
    // And back, through the environment.
    let mut c = command();
    c.env("ILINK_BASE_URL", sim.base_url())
        .arg("--state-dir")
        .arg(dir.path())
        .args(["send", "--to", USER, "--text", "y"]);
    let o = run(c, None).await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    // The text the unreachable server did not take was kept in the queue; it goes first.
    let d = sim.delivered_to(USER);
    let texts: Vec<_> = d.iter().map(|m| m.text()).collect();
    assert_eq!(texts, vec![Some("x"), Some("y")]);
}

// ------------------------------------------------------------------------- accounts etc.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_users_and_logout() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = seeded_with_token(&sim, dir.path()).await;
    let o = ilink(&sim, dir.path(), &["accounts", "--json"], None).await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let v: Value = serde_json::from_str(text(&o.stdout).trim()).unwrap();
    assert_eq!(v["account"], bot.bot_id.as_str());
    assert_eq!(v["users"], 1);
    assert_eq!(v["consumer_pid"], Value::Null);
    let o = ilink(&sim, dir.path(), &["users"], None).await;
    let line = text(&o.stdout);
    assert!(line.starts_with(&format!("{USER}  ")), "{line}");
    // Each user with the reply budget of their window (issue 22 with issue 18's budget).
    assert!(
        line.contains("message(s) left, 0 queued, window closes"),
        "{line}"
    );
    let o = ilink(&sim, dir.path(), &["logout"], None).await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains(&format!("Logged out {}", bot.bot_id)));
    assert!(
        FileStore::new(dir.path())
            .accounts()
            .await
            .unwrap()
            .is_empty()
    );
    let o = ilink(&sim, dir.path(), &["users"], None).await;
    assert_eq!(code(&o), 3, "{}", text(&o.stderr));
}

// ------------------------------------------------------------------------- conventions

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_errcode_only_minus_14_is_a_login_error_printed_once() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    seeded_with_token(&sim, dir.path()).await;
    sim.inject_fault(Endpoint::SendMessage, Fault::StaleToken, 1);
    let o = ilink(
        &sim,
        dir.path(),
        &["send", "--to", USER, "--text", "x"],
        None,
    )
    .await;
    let err = text(&o.stderr);
    assert_eq!(code(&o), 3, "{err}");
    assert!(err.starts_with("ilink: login needed: "), "{err}");
    assert!(err.contains("code -14"), "{err}");
    assert!(!err.contains("ret -14"), "{err}");
    assert_eq!(err.matches("ilink:").count(), 1, "printed once: {err}");
    assert_eq!(err.matches("hint:").count(), 1, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_plain_markdown_and_json() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    seeded_with_token(&sim, dir.path()).await;
    let o = ilink(
        &sim,
        dir.path(),
        &["send", "--to", USER, "--text", MD, "--json"],
        None,
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let v: Value = serde_json::from_str(text(&o.stdout).trim()).unwrap();
    assert_eq!(v["sent"], "text");
    assert!(v["message_id"].is_string(), "{v}");
    let o = ilink(
        &sim,
        dir.path(),
        &["send", "--to", USER, "--text", MD, "--plain"],
        None,
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let d = sim.delivered_to(USER);
    assert_eq!(d[0].text(), Some("**Echo**: x  斜体"));
    assert_eq!(d[1].text(), Some(MD));
    let o = ilink(
        &sim,
        dir.path(),
        &["send", "--to", USER, "--text", "x", "--plain", "--markdown"],
        None,
    )
    .await;
    assert_eq!(code(&o), 2);
    let help = AssertCommand::new(BIN)
        .args(["send", "--help"])
        .assert()
        .success();
    assert!(text(&help.get_output().stdout).contains("--plain"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_json() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    seed(&sim, dir.path()).await;
    let o = ilink(&sim, dir.path(), &["doctor", "--json"], None).await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let v: Value = serde_json::from_str(text(&o.stdout).trim()).unwrap();
    assert_eq!(v["passed"], true);
    let checks = v["checks"].as_array().unwrap();
    assert!(
        checks
            .iter()
            .any(|c| c["check"] == "token" && c["status"] == "ok"),
        "{v}"
    );
}

#[test]
fn options_a_command_does_not_use_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (args, flag) in [
        (
            &["sim", "--base-url", "http://127.0.0.1:9/"][..],
            "--base-url",
        ),
        (
            &["decrypt", "--account", "nobody", "--key", "00", "a", "b"],
            "--account",
        ),
        (
            &["silk", "decode", "--state-dir", "/tmp", "a", "b"],
            "--state-dir",
        ),
    ] {
        let a = AssertCommand::new(BIN)
            .env_remove("ILINK_BASE_URL")
            .args(args)
            .current_dir(dir.path())
            .assert()
            .code(2);
        let err = text(&a.get_output().stderr);
        assert!(err.starts_with("ilink: usage error: "), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
        assert_eq!(err.matches("ilink:").count(), 1, "{err}");
    }
    // Their help lists only their own options.
    let a = AssertCommand::new(BIN)
        .args(["sim", "--help"])
        .assert()
        .success();
    assert!(!text(&a.get_output().stdout).contains("--state-dir"));
    let a = AssertCommand::new(BIN)
        .args(["tail", "--help"])
        .assert()
        .success();
    assert!(text(&a.get_output().stdout).contains("--state-dir"));
    // From the environment, or before the subcommand (a wrapper's shared settings), they
    // are fine.
    let a = AssertCommand::new(BIN)
        .env("ILINK_ACCOUNT", "nobody")
        .args(["--state-dir", "/nowhere", "completions", "bash"])
        .assert()
        .success();
    assert!(text(&a.get_output().stdout).contains("_ilink"));
}

#[test]
fn max_zero_is_a_usage_error() {
    for cmd in ["echo", "tail"] {
        let a = AssertCommand::new(BIN)
            .args([cmd, "--max", "0"])
            .assert()
            .code(2);
        assert!(text(&a.get_output().stderr).contains("--max"));
    }
}

#[test]
fn silk_decode_errors_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let a = AssertCommand::new(BIN)
        .args(["silk", "decode", "--rate", "7", "in.silk", "out.wav"])
        .assert()
        .code(2);
    assert!(text(&a.get_output().stderr).contains("--rate"));
    let wav = dir.path().join("hello.wav");
    let pcm = ilink_silk::Pcm {
        samples: vec![0; 2400],
        sample_rate: 24_000,
    };
    std::fs::write(&wav, pcm.to_wav().unwrap()).unwrap();
    let a = AssertCommand::new(BIN)
        .args(["silk", "decode"])
        .arg(&wav)
        .arg(dir.path().join("x.wav"))
        .assert()
        .code(1);
    let err = text(&a.get_output().stderr);
    assert!(err.starts_with("ilink: error: "), "{err}");
    assert!(err.contains("is a WAV file, not SILK voice"), "{err}");
    assert!(err.contains("ilink silk encode"), "{err}");
    assert!(
        !err.contains("key"),
        "the key has nothing to do with it: {err}"
    );
}

#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish"] {
        let a = AssertCommand::new(BIN)
            .args(["completions", shell])
            .assert()
            .success();
        let out = text(&a.get_output().stdout);
        assert!(
            out.contains("logout") && out.contains("state-dir"),
            "{shell}"
        );
    }
    AssertCommand::new(BIN)
        .args(["completions", "tcsh"])
        .assert()
        .code(2);
    let a = AssertCommand::new(BIN).arg("man").assert().success();
    let man = text(&a.get_output().stdout);
    assert!(man.contains(".TH ilink"), "{man}");
    assert!(man.contains("Exit codes"), "{man}");
}

#[test]
fn help_lists_the_exit_codes_with_their_prefixes() {
    let a = AssertCommand::new(BIN).arg("--help").assert().success();
    let help = text(&a.get_output().stdout);
    for want in [
        "2  usage error",
        "3  login needed",
        "4  not delivered",
        "5  account busy",
        "NO_COLOR",
        "accounts",
        "logout",
        "completions",
    ] {
        assert!(help.contains(want), "{want}: {help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_and_sim_print_json() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = seed(&sim, dir.path()).await;
    let doc: Vec<u8> = (0..3000u32).map(|i| (i % 253) as u8).collect();
    sim.user(USER)
        .send_file(&bot.bot_id, "data.bin", &doc)
        .unwrap();
    let o = ilink(&sim, dir.path(), &["tail", "--json", "--max", "1"], None).await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let out = dir.path().join("data.bin");
    let o = ilink(
        &sim,
        dir.path(),
        &["download", "-", "-o", out.to_str().unwrap(), "--json"],
        Some(&text(&o.stdout)),
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let v: Value = serde_json::from_str(text(&o.stdout).trim()).unwrap();
    assert_eq!(v["bytes"], 3000);
    assert_eq!(std::fs::read(&out).unwrap(), doc);

    let mut c = command();
    c.args(["sim", "--json", "--hold-ms", "200"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["status"], "running");
    assert!(
        v["base_url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    // SIGTERM stops the emulator like Ctrl-C.
    let pid = child.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// The sim with a fixed seed: the bot a QR login confirms has the same id every time.
async fn seeded_sim() -> Sim {
    Sim::start(SimConfig {
        seed: Some(0x5EED),
        ..SimConfig::for_tests(Duration::from_millis(300))
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_login_that_cannot_be_saved_is_kept_and_says_where() {
    // Learn the id the seeded sim's login confirms.
    let first = seeded_sim().await;
    first.qr().script(vec![QrStep::Confirm {
        user_id: USER.into(),
    }]);
    let probe = tempfile::tempdir().unwrap();
    let o = ilink(&first, probe.path(), &["login"], None).await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let id = FileStore::new(probe.path())
        .accounts()
        .await
        .unwrap()
        .remove(0);

    // The same login again, into a state directory where that account's directory cannot
    // be made (a file is in its place): the directory itself passes the check.
    let sim = seeded_sim().await;
    sim.qr().script(vec![QrStep::Confirm {
        user_id: USER.into(),
    }]);
    let dir = tempfile::tempdir().unwrap();
    let blocked = FileStore::new(dir.path()).account_dir(&id);
    std::fs::create_dir_all(blocked.parent().unwrap()).unwrap();
    std::fs::write(&blocked, b"in the way").unwrap();
    let o = ilink(&sim, dir.path(), &["login"], None).await;
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(code(&o), 1, "{out}\n{err}");
    assert!(!out.contains("Logged in"), "{out}");
    assert!(
        err.contains(&format!(
            "ilink: error: the login of {id} was confirmed but could not be saved"
        )),
        "{err}"
    );
    // The hint names the copy, which holds the confirmed token.
    let hint = err.lines().find(|l| l.contains("hint:")).unwrap();
    let path = hint
        .split_whitespace()
        .find(|w| w.contains("ilink-login-"))
        .unwrap();
    let saved: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(saved["account_id"], id.as_str());
    assert!(sim.bot(&id).is_some());
    assert!(!saved["token"].as_str().unwrap().is_empty());
    std::fs::remove_file(path).unwrap();
}
