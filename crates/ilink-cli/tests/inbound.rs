//! `ilink tail`, `download` and `decrypt` as processes, against a raw HTTP server that serves
//! exact bytes (issue 14 and the download bullets of issue 21). Each test names the exit code
//! and the first line of the message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use ilink_client::{Credentials, FileStore, Secret, StateStore};
use ilink_crypto::{MediaKey, decrypt, encrypt, md5_hex};
use ilink_reliability::raw_server::{RawReply, RawRequest, RawServer};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

const USER: &str = "pat@im.wechat";

fn args_for(server: &RawServer, dir: &Path) -> Vec<String> {
    let base = server.base_url();
    vec![
        "--base-url".into(),
        base.clone(),
        "--cdn-base-url".into(),
        format!("{base}c2c"),
        "--state-dir".into(),
        dir.display().to_string(),
    ]
}

async fn ilink(server: &RawServer, dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut c = command();
    c.args(args_for(server, dir))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s).await.unwrap();
    }
    drop(input);
    tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("ilink did not finish (the account jammed?)")
        .unwrap()
}

/// The lines of stderr that contain `needle` (log lines of the library included).
fn stderr_lines_with(o: &Output, needle: &str) -> Vec<String> {
    text(&o.stderr)
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// The first line of the error `ilink` printed (the line starting with `ilink: `).
fn first_error_line(o: &Output) -> String {
    text(&o.stderr)
        .lines()
        .find(|l| l.starts_with("ilink: "))
        .unwrap_or_default()
        .to_owned()
}

async fn seed(server: &RawServer, dir: &Path) {
    FileStore::new(dir)
        .save_credentials(&Credentials {
            account_id: "bot@im.bot".into(),
            token: Secret::new("RAW-BOT-TOKEN".to_owned()),
            base_url: Some(server.base_url()),
            user_id: None,
            saved_at_ms: 1,
        })
        .await
        .unwrap();
}

fn good(id: u64, t: &str) -> String {
    json!({
        "seq": id, "message_id": 7_461_000_000_000_000_000u64 + id, "from_user_id": USER,
        "client_id": format!("cid-{id}"), "context_token": "CTX", "message_type": 1,
        "item_list": [{"type": 1, "text_item": {"text": t}}],
    })
    .to_string()
}

fn body(b: Vec<u8>) -> RawReply {
    RawReply::Full {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: b,
    }
}

/// An empty batch, answered slowly (a long-poll that holds a little), so idle polling does
/// not spin.
fn idle() -> RawReply {
    RawReply::Drip {
        body: br#"{"ret":0,"msgs":[]}"#.to_vec(),
        every: Duration::from_millis(10),
    }
}

/// A server whose n-th getupdates answer is `updates(n)`, and whose CDN serves `cdn`.
async fn server(
    updates: impl Fn(usize) -> RawReply + Send + Sync + 'static,
    cdn: Option<Vec<u8>>,
) -> RawServer {
    let polls = Arc::new(AtomicUsize::new(0));
    RawServer::start(move |req: &RawRequest| {
        if req.is("/getupdates") {
            updates(polls.fetch_add(1, Ordering::SeqCst))
        } else if req.is("/download") {
            match &cdn {
                Some(b) => RawReply::Full {
                    status: 200,
                    headers: vec![],
                    body: b.clone(),
                },
                None => RawReply::Full {
                    status: 404,
                    headers: vec![],
                    body: b"no".to_vec(),
                },
            }
        } else {
            RawReply::json(&json!({"ret": 0}))
        }
    })
    .await
    .unwrap()
}

fn poisoned_bodies() -> Vec<(&'static str, Vec<u8>, bool)> {
    let mut utf8 =
        br#"{"ret":0,"msgs":[{"seq":1,"item_list":[{"type":1,"text_item":{"text":"caf"#.to_vec();
    utf8.push(0xe9);
    utf8.extend_from_slice(
        format!(r#""}}}}]}},{}],"get_updates_buf":"C1"}}"#, good(2, "good")).as_bytes(),
    );
    vec![
        (
            "message_id 1e400",
            format!(
                r#"{{"ret":0,"msgs":[{{"seq":1,"message_id":1e400}},{}],"get_updates_buf":"C1"}}"#,
                good(2, "good")
            )
            .into_bytes(),
            true,
        ),
        ("invalid UTF-8", utf8, true),
        (
            "ret \"0\"",
            format!(
                r#"{{"ret":"0","msgs":[{}],"get_updates_buf":"C1"}}"#,
                good(2, "good")
            )
            .into_bytes(),
            false,
        ),
        (
            "ret 0.0",
            format!(
                r#"{{"ret":0.0,"msgs":[{}],"get_updates_buf":"C1"}}"#,
                good(2, "good")
            )
            .into_bytes(),
            false,
        ),
        (
            "longpolling_timeout_ms 3.5",
            format!(
                r#"{{"ret":0,"msgs":[{}],"get_updates_buf":"C1","longpolling_timeout_ms":3.5}}"#,
                good(2, "good")
            )
            .into_bytes(),
            false,
        ),
    ]
}

/// Issue 14, case 1: each poisoned batch delivers its good message and `tail` ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_survives_poisoned_batches() {
    for (name, poisoned, undecodable) in poisoned_bodies() {
        let s = server(
            move |n| {
                if n == 0 {
                    body(poisoned.clone())
                } else {
                    idle()
                }
            },
            None,
        )
        .await;
        let dir = tempfile::tempdir().unwrap();
        seed(&s, dir.path()).await;
        let o = ilink(&s, dir.path(), &["tail", "--json", "--max", "1"], None).await;
        assert_eq!(code(&o), 0, "{name}: {}", text(&o.stderr));
        let out = text(&o.stdout);
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let good: Vec<&Value> = lines.iter().filter(|l| l["text"] == "good").collect();
        assert_eq!(good.len(), 1, "{name}: {out}");
        let bad: Vec<&Value> = lines
            .iter()
            .filter(|l| l.get("undecodable").is_some())
            .collect();
        assert_eq!(bad.len(), usize::from(undecodable), "{name}: {out}");
        if undecodable {
            assert_eq!(
                bad[0]["undecodable"],
                Value::Null,
                "{name}: the raw bytes are not JSON"
            );
            assert!(
                bad[0]["raw_text"].as_str().unwrap().contains("\"seq\":1"),
                "{name}"
            );
            // Reported on stderr once, by the library's log (the JSON line is on stdout).
            let logged = stderr_lines_with(&o, "could not be decoded");
            assert_eq!(logged.len(), 1, "{name}: {}", text(&o.stderr));
            assert!(
                logged[0].contains("WARN")
                    && logged[0].contains("undecodable message")
                    && logged[0]
                        .contains("message #0 of the getupdates batch could not be decoded: "),
                "{name}: {}",
                text(&o.stderr)
            );
        } else {
            assert!(
                stderr_lines_with(&o, "could not be decoded").is_empty(),
                "{name}: {}",
                text(&o.stderr)
            );
        }
        // The text view too.
        let s2 = server(
            {
                let p = poisoned_bodies()
                    .into_iter()
                    .find(|p| p.0 == name)
                    .unwrap()
                    .1;
                move |n| if n == 0 { body(p.clone()) } else { idle() }
            },
            None,
        )
        .await;
        let dir2 = tempfile::tempdir().unwrap();
        seed(&s2, dir2.path()).await;
        let o = ilink(&s2, dir2.path(), &["tail", "--max", "1"], None).await;
        assert_eq!(code(&o), 0, "{name}: {}", text(&o.stderr));
        // The text view reports an undecodable message once too (the library's log line).
        assert_eq!(
            stderr_lines_with(&o, "could not be decoded").len(),
            usize::from(undecodable),
            "{name}: {}",
            text(&o.stderr)
        );
        assert!(
            text(&o.stdout).contains(&format!("{USER}: \"good\"")),
            "{name}: {}",
            text(&o.stdout)
        );
    }
}

/// A body that cannot be read is reported on stderr at each attempt, not a silent loop: the
/// library logs each failed poll (a warning naming the cause; an error after
/// `max_consecutive_failures` in a row), and `tail` does not print it a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_reports_an_unreadable_body() {
    let s = server(
        |n| match n {
            0..=1 => body(b"<html>502</html>".to_vec()),
            2 => body(
                format!(r#"{{"msgs":[{}],"get_updates_buf":"C"}}"#, good(1, "back")).into_bytes(),
            ),
            _ => idle(),
        },
        None,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    seed(&s, dir.path()).await;
    let o = ilink(&s, dir.path(), &["tail", "--max", "1"], None).await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let err = text(&o.stderr);
    let reported = stderr_lines_with(&o, "getupdates");
    assert_eq!(reported.len(), 2, "each failed poll once: {err}");
    assert!(
        reported.iter().all(|l| l.contains("WARN")
            && l.contains("getupdates failed; retrying")
            && l.contains("the answer is not the expected JSON")),
        "{err}"
    );
    assert!(text(&o.stdout).contains("\"back\""));
}

/// Issue 14, case 2: the same text, then the same body with only a new `message_id`, then
/// "END": `tail --json --max 2` prints the text once, then END.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_a_redelivered_copy_once() {
    let msg = |id: u64| {
        json!({"seq": 41, "message_id": id, "client_id": "srv-cid-41", "from_user_id": USER,
               "context_token": "ctx-b1", "message_type": 1, "message_state": 2,
               "item_list": [{"type": 1, "text_item": {"text": "hello"}}]})
    };
    let s = server(
        move |n| match n {
            0 => RawReply::json(
                &json!({"ret": 0, "msgs": [msg(7461000000000000041)], "get_updates_buf": "B1"}),
            ),
            1 => RawReply::json(
                &json!({"ret": 0, "msgs": [msg(7461000000000000042)], "get_updates_buf": "B2"}),
            ),
            2 => body(
                format!(
                    r#"{{"ret":0,"msgs":[{}],"get_updates_buf":"B3"}}"#,
                    good(50, "END")
                )
                .into_bytes(),
            ),
            _ => idle(),
        },
        None,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    seed(&s, dir.path()).await;
    let o = ilink(&s, dir.path(), &["tail", "--json", "--max", "2"], None).await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let texts: Vec<String> = text(&o.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(texts, vec!["hello", "END"]);
}

/// Issue 14, case 4: every field, unknown ones included; ids as strings; the text view shows
/// the group and the quoted text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_every_field_and_ids_as_strings() {
    let m = r#"{"seq":7,"message_id":7461000000000000007,"from_user_id":"pat@im.wechat","client_id":"c7",
        "group_id":"grp-1@chatroom","session_id":"sess-9","root_id":9007199254740993,"context_token":"SECRET-CTX",
        "item_list":[{"type":1,"msg_id":18446744073709551615,"button_item_list":[],"future_field":{"x":1},
            "text_item":{"text":"I agree"},
            "ref_msg":{"title":"t","svr_id":9007199254740995,"message_item":{"type":1,"text_item":{"text":"the original"}}}}]}"#;
    let batch = format!(r#"{{"ret":0,"msgs":[{m}],"get_updates_buf":"B"}}"#).into_bytes();
    let b2 = batch.clone();
    let s = server(
        move |n| if n == 0 { body(batch.clone()) } else { idle() },
        None,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    seed(&s, dir.path()).await;
    let o = ilink(&s, dir.path(), &["tail", "--json", "--max", "1"], None).await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["group_id"], "grp-1@chatroom");
    assert_eq!(v["session_id"], "sess-9");
    assert_eq!(v["root_id"], "9007199254740993");
    assert_eq!(v["message_id"], "7461000000000000007");
    assert_eq!(v["items"][0]["msg_id"], "18446744073709551615");
    assert_eq!(v["items"][0]["future_field"]["x"], 1);
    assert_eq!(v["items"][0]["button_item_list"], json!([]));
    assert_eq!(v["items"][0]["ref_msg"]["svr_id"], "9007199254740995");
    assert_eq!(v["text"], "I agree");
    assert_eq!(v["from"], USER);
    assert!(!out.contains("SECRET-CTX"), "the context token is redacted");

    let s = server(
        move |n| if n == 0 { body(b2.clone()) } else { idle() },
        None,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    seed(&s, dir.path()).await;
    let o = ilink(&s, dir.path(), &["tail", "--max", "1"], None).await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let line = text(&o.stdout);
    assert!(
        line.contains(
            r#"pat@im.wechat in group grp-1@chatroom: [quoting "the original"] "I agree""#
        ),
        "{line}"
    );
}

fn plaintext() -> Vec<u8> {
    (0..9000u32).map(|i| (i * 7 % 251) as u8).collect()
}

fn file_item(key: &MediaKey, plain: &[u8]) -> Value {
    json!({"type": 4, "file_item": {
        "media": {"encrypt_query_param": "P", "aes_key": key.to_base64_of_hex(), "encrypt_type": 1},
        "file_name": "report.pdf", "len": plain.len().to_string(), "md5": md5_hex(plain)}})
}

/// Issue 14, case 3: a wrong key that passes the padding check. Before: 9007 bytes of garbage
/// and exit 0. Now: exit 1, a typed message, no file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_refuses_media_that_contradicts_its_declaration() {
    let key = MediaKey::from_bytes([7u8; 16]);
    let plain = plaintext();
    let served = (0u32..)
        .map(|i| {
            let mut k = [0x5au8; 16];
            k[..4].copy_from_slice(&i.to_le_bytes());
            encrypt(&MediaKey::from_bytes(k), &plain)
        })
        .find(|ct| decrypt(&key, ct).is_ok())
        .unwrap();
    let s = server(|_| idle(), Some(served.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dl");
    std::fs::create_dir(&out).unwrap();
    let line = json!({"items": [file_item(&key, &plain)]}).to_string();
    let o = ilink(
        &s,
        dir.path(),
        &["download", &line, "-o", out.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    assert_eq!(
        first_error_line(&o),
        "ilink: error: download refused: the downloaded media is not what its message declares: \
         the media is larger than the 9000 bytes its message declares",
        "{}",
        text(&o.stderr)
    );
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "nothing saved");

    // `decrypt` with --md5 or --len refuses the same bytes.
    let enc = dir.path().join("report.pdf.enc");
    std::fs::write(&enc, &served).unwrap();
    let md5 = md5_hex(&plain);
    for flags in [vec!["--md5", md5.as_str()], vec!["--len", "9000"]] {
        let mut a = vec!["decrypt", "--key"];
        let hex = key.to_hex();
        a.push(&hex);
        a.extend(flags.iter().copied());
        a.push(enc.to_str().unwrap());
        a.push(out.to_str().unwrap());
        let o = ilink(&s, dir.path(), &a, None).await;
        assert_eq!(code(&o), 1, "{}", text(&o.stderr));
        let first = first_error_line(&o);
        assert!(
            first
                == "ilink: error: the decrypted file's MD5 is not the one of --md5; nothing was saved"
                || first.starts_with("ilink: error: the decrypted file is 90"),
            "{first}"
        );
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "nothing saved");
    }
}

/// Issue 21: `-o -` writes to stdout; `-o DIR` saves under the file's own name; a key-less
/// download is refused unless `--raw`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_outputs_and_the_key_rule() {
    let key = MediaKey::from_bytes([9u8; 16]);
    let plain = plaintext();
    let s = server(|_| idle(), Some(encrypt(&key, &plain))).await;
    let dir = tempfile::tempdir().unwrap();
    let line = json!({"items": [file_item(&key, &plain)]}).to_string();

    // -o - : the bytes on stdout, no file named "-".
    let o = ilink(
        &s,
        dir.path(),
        &["download", "-", "-o", "-"],
        Some(line.as_bytes()),
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(o.stdout, plain);
    assert!(!dir.path().join("-").exists());

    // -o DIR: saved as DIR/report.pdf.
    let out = dir.path().join("dl");
    std::fs::create_dir(&out).unwrap();
    let o = ilink(
        &s,
        dir.path(),
        &["download", &line, "-o", out.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(std::fs::read(out.join("report.pdf")).unwrap(), plain);
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);

    // --param without a key: refused, exit 2, nothing written.
    let raw = dir.path().join("raw.bin");
    let o = ilink(
        &s,
        dir.path(),
        &["download", "--param", "P", "-o", raw.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    assert_eq!(
        first_error_line(&o),
        "ilink: usage error: no key: the media would be saved still encrypted"
    );
    assert!(!raw.exists());
    // An item without aes_key: the same.
    let mut keyless = file_item(&key, &plain);
    keyless["file_item"]["media"]
        .as_object_mut()
        .unwrap()
        .remove("aes_key");
    let o = ilink(
        &s,
        dir.path(),
        &[
            "download",
            &keyless.to_string(),
            "-o",
            raw.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    assert!(first_error_line(&o).starts_with(
        "ilink: usage error: the item has no aes_key, so its media cannot be decrypted"
    ));
    assert!(!raw.exists());
    // --raw: the ciphertext as served.
    let o = ilink(
        &s,
        dir.path(),
        &[
            "download",
            "--param",
            "P",
            "--raw",
            "-o",
            raw.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(std::fs::read(&raw).unwrap(), encrypt(&key, &plain));

    // decrypt into a directory.
    let dl2 = dir.path().join("dl2");
    std::fs::create_dir(&dl2).unwrap();
    let enc = dir.path().join("report.pdf.enc");
    std::fs::write(&enc, encrypt(&key, &plain)).unwrap();
    let o = ilink(
        &s,
        dir.path(),
        &[
            "decrypt",
            "--key",
            &key.to_hex(),
            "--md5",
            &md5_hex(&plain),
            enc.to_str().unwrap(),
            &format!("{}/", dl2.display()),
        ],
        None,
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(std::fs::read(dl2.join("report.pdf")).unwrap(), plain);
    let o = ilink(
        &s,
        dir.path(),
        &[
            "decrypt",
            "--key",
            &key.to_hex(),
            "--md5",
            "xyz",
            enc.to_str().unwrap(),
            dl2.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert_eq!(code(&o), 2);
    assert_eq!(
        first_error_line(&o),
        "ilink: usage error: --md5 \"xyz\" is not 32 hex digits"
    );
}

/// Issue 21: an interrupted download (Ctrl-C) removes its partial file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_download_removes_its_partial_file() {
    let s = RawServer::start(|req: &RawRequest| {
        if req.is("/download") {
            RawReply::Drip {
                body: vec![0u8; 1 << 20],
                every: Duration::from_millis(1),
            }
        } else {
            RawReply::json(&json!({"ret": 0}))
        }
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("big.bin");
    let mut c = command();
    c.args(args_for(&s, dir.path()))
        .args([
            "download",
            "--param",
            "P",
            "--raw",
            "-o",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    let pid = child.id().unwrap();
    let part = dir.path().join("big.bin.part");
    let mut appeared = false;
    for _ in 0..500 {
        if part.exists() {
            appeared = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(appeared, "the download never started");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    assert_eq!(
        first_error_line(&o),
        "ilink: error: interrupted; the partial file was removed"
    );
    assert!(!part.exists(), "the partial file is left");
    assert!(!out.exists());
}

/// `-o DIR` for media without a name of its own: `media` with the sniffed extension.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_saved_in_a_directory_gets_its_format_extension() {
    let key = MediaKey::from_bytes([4u8; 16]);
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend(std::iter::repeat_n(7u8, 3000));
    let s = server(|_| idle(), Some(encrypt(&key, &png))).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pics");
    std::fs::create_dir(&out).unwrap();
    let item = json!({"type": 2, "image_item": {"aeskey": key.to_hex(),
        "media": {"encrypt_query_param": "P"}}});
    let o = ilink(
        &s,
        dir.path(),
        &["download", &item.to_string(), "-o", out.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(std::fs::read(out.join("media.png")).unwrap(), png);
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
}
