//! Each example runs against its own in-process ilink-sim (`--sim`) and checks its answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use assert_cmd::Command;

fn run(bin: &str, expect: &[&str]) {
    let out = Command::new(assert_cmd::cargo::cargo_bin(bin))
        .arg("--sim")
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{bin} failed:\n{stdout}\n{stderr}");
    for want in expect {
        assert!(
            stdout.contains(want),
            "{bin}: missing {want:?} in\n{stdout}"
        );
    }
}

#[test]
fn echo_bot() {
    run("echo_bot", &["ok: text echoed", "ok: nothing dropped"]);
}

#[test]
fn media_bot() {
    run(
        "media_bot",
        &[
            "ok: the picture arrived intact",
            "ok: the photo came back intact",
            "ok: the file came back intact",
        ],
    );
}

#[test]
fn voice_bot() {
    run(
        "voice_bot",
        &["ok: the bot decoded the voice", "ok: three beeps for 2.2 s"],
    );
}

#[test]
fn multi_account() {
    run(
        "multi_account",
        &[
            "ok: bot A answered ann",
            "ok: bot B answered ben",
            "ok: the proactive send went through bot B",
        ],
    );
}
