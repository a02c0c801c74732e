//! Long texts through the `ilink` binary against ilink-sim with its live limits on:
//! `send --text-file` / `--text -`, per-part output and exit codes, `queue show|flush|clear`,
//! and `echo` flushing the queue before it answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::*;
use ilink_sim::{BotAccount, Sim};

const USER: &str = "lin@im.wechat";

/// A bot whose state holds a context token for USER (USER wrote, `ilink tail` saw it).
async fn seeded(sim: &Sim, dir: &Path) -> BotAccount {
    let bot = seed(sim, dir).await;
    sim.user(USER).send_text(&bot.bot_id, "hi").unwrap();
    let o = ilink(sim, dir, &["tail", "--max", "1"], None).await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    bot
}

fn delivered_text(sim: &Sim) -> String {
    let suffix = format!("\n\n{}", ilink_client::outbox::DEFAULT_CONTINUATION_NOTICE);
    sim.delivered_to(USER)
        .iter()
        .map(|d| {
            let t = d.text().unwrap_or_default();
            t.strip_suffix(&suffix).unwrap_or(t).to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100k_cjk_text_file_goes_out_whole_across_windows() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = seeded(&sim, dir.path()).await;
    // 100,000 CJK characters: too long for an argument list, fine as a file.
    let body: String = "长回复应该完整到达。".repeat(10_000);
    let path = dir.path().join("long.txt");
    std::fs::write(&path, format!("{body}\n")).unwrap();
    let o = ilink(
        &sim,
        dir.path(),
        &["send", "--to", USER, "--text-file", path.to_str().unwrap()],
        None,
    )
    .await;
    let out = text(&o.stdout);
    assert_eq!(
        code(&o),
        6,
        "queued parts exit 6: {out}\n{}",
        text(&o.stderr)
    );
    let parts = out.lines().count();
    assert!(parts >= 56, "{parts} parts: {out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("delivered text part"))
            .count(),
        10
    );
    assert!(
        out.contains(&format!(
            "queued text part 11/{parts} (position 0, reply window)"
        )),
        "{out}"
    );
    assert!(text(&o.stderr).contains("queued"), "{}", text(&o.stderr));
    assert_eq!(sim.delivered_to(USER).len(), 10);

    let o = ilink(&sim, dir.path(), &["queue", "show", "--to", USER], None).await;
    assert_eq!(code(&o), 0);
    assert!(
        text(&o.stdout).contains(&format!("{USER}: {} queued, 0 message(s) left", parts - 10)),
        "{}",
        text(&o.stdout)
    );
    // Flushing in the same window sends nothing (exit 6: still queued).
    let o = ilink(&sim, dir.path(), &["queue", "flush", "--to", USER], None).await;
    assert_eq!(code(&o), 6, "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("sent 0 message(s)"));

    // Each "continue" runs the echo bot once: the queue goes first (10 a window); the echo
    // reply itself joins the end of the queue and is cleared at the end.
    let mut rounds = 0;
    while sim.delivered_to(USER).len() < parts {
        rounds += 1;
        assert!(rounds <= 6, "the queue does not drain");
        sim.user(USER).send_text(&bot.bot_id, "continue").unwrap();
        let o = ilink(&sim, dir.path(), &["echo", "--max", "1"], None).await;
        assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    }
    let got = delivered_text(&sim);
    assert!(
        got.starts_with(&body),
        "the text arrived whole and in order"
    );
    assert!(
        sim.dropped()
            .iter()
            .all(|d| d.reason == ilink_sim::DropReason::Throttled),
        "{:?}",
        sim.dropped()
    );
    let o = ilink(&sim, dir.path(), &["queue", "clear", "--to", USER], None).await;
    assert_eq!(code(&o), 0);
    assert!(text(&o.stdout).contains("removed"), "{}", text(&o.stdout));
    let o = ilink(&sim, dir.path(), &["queue", "show"], None).await;
    assert!(
        text(&o.stdout).contains("no messages are queued"),
        "{}",
        text(&o.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_from_stdin_all_or_nothing_and_empty_texts() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    seeded(&sim, dir.path()).await;
    let o = ilink(
        &sim,
        dir.path(),
        &["send", "--to", USER, "--text", "-"],
        Some("from stdin, not a literal dash\n"),
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).starts_with("delivered text (message_id"),
        "{}",
        text(&o.stdout)
    );
    assert_eq!(
        sim.delivered_to(USER)[0].text(),
        Some("from stdin, not a literal dash")
    );
    // All or nothing: too long for the 9 messages left, nothing is sent.
    let long = "word ".repeat(5000);
    let o = ilink(
        &sim,
        dir.path(),
        &["send", "--to", USER, "--text", "-", "--all-or-nothing"],
        Some(&long),
    )
    .await;
    assert_eq!(code(&o), 4, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("nothing was sent"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(sim.delivered_to(USER).len(), 1);
    // Only a Markdown image: nothing left to send is a usage error, and no sendmessage.
    sim.clear_requests();
    let o = ilink(
        &sim,
        dir.path(),
        &["send", "--to", USER, "--text", "![pic](http://x/y.png)"],
        None,
    )
    .await;
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("empty"), "{}", text(&o.stderr));
    assert!(
        !sim.requests()
            .iter()
            .any(|r| r.path.ends_with("sendmessage"))
    );
    // Not UTF-8 on stdin.
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, [0xff, 0xfe, 0x00]).unwrap();
    let o = ilink(
        &sim,
        dir.path(),
        &["send", "--to", USER, "--text-file", bad.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("not UTF-8"), "{}", text(&o.stderr));
}

#[test]
fn sim_help_documents_the_text_cap_and_exit_6() {
    let o = std::process::Command::new(BIN)
        .args(["sim", "--help"])
        .output()
        .unwrap();
    let help = text(&o.stdout);
    assert!(help.contains("--text-cap"), "{help}");
    assert!(help.contains("[default: 2000]"), "{help}");
    let o = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap();
    assert!(text(&o.stdout).contains("6  queued"), "{}", text(&o.stdout));
    let o = std::process::Command::new(BIN)
        .args(["send", "--help"])
        .output()
        .unwrap();
    let help = text(&o.stdout);
    assert!(
        help.contains("--text-file") && help.contains("--all-or-nothing"),
        "{help}"
    );
}
