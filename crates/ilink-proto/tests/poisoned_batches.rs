//! A getupdates batch never fails as a whole for what one message or one envelope field holds
//! (issue 14, case 1). Each body here carries one odd value and one good message; before the
//! tolerant decoder each of them failed the whole body, so the cursor never advanced.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ilink_proto::{
    ApiError, ApiResponse, DecodeError, GetUpdatesResponse, MAX_LONG_POLL_TIMEOUT_MS,
    MessageErrorKind, decode_updates,
};

const GOOD: &str = r#"{"seq":2,"message_id":7461000000000000002,"from_user_id":"u@im.wechat","item_list":[{"type":1,"text_item":{"text":"good"}}],"context_token":"ctx"}"#;

fn batch(odd_message: &[u8]) -> Vec<u8> {
    let mut b = br#"{"ret":0,"msgs":["#.to_vec();
    b.extend_from_slice(odd_message);
    b.extend_from_slice(b",");
    b.extend_from_slice(GOOD.as_bytes());
    b.extend_from_slice(br#"],"get_updates_buf":"NEXT"}"#);
    b
}

fn good_survives(resp: &GetUpdatesResponse, at: usize) {
    let msgs = resp.messages();
    let good = msgs[at].as_ref().expect("the good message decodes");
    assert_eq!(good.body_text(), Some("good"));
    assert_eq!(resp.next_cursor().unwrap().expose(), "NEXT");
    resp.status().unwrap();
}

#[test]
fn a_message_id_of_1e400_is_one_undecodable_message() {
    for odd in [
        &br#"{"seq":1,"message_id":1e400}"#[..],
        br#"{"seq":1,"message_id":-1e400}"#,
        br#"{"seq":1,"create_time_ms":123e999,"item_list":[]}"#,
        br#"{"seq":1,"item_list":[{"type":1,"msg_id":1E+400}]}"#,
    ] {
        let body = batch(odd);
        let resp = decode_updates(&body).unwrap();
        assert_eq!(resp.message_count(), 2);
        let msgs = resp.messages();
        let err = msgs[0].as_ref().unwrap_err();
        assert_eq!(err.index(), 0);
        assert_eq!(err.kind(), MessageErrorKind::NumberOutOfRange);
        assert!(err.raw().is_none());
        assert_eq!(&*err.raw_bytes(), odd, "the exact bytes are kept");
        good_survives(&resp, 1);
    }
}

#[test]
fn invalid_utf8_in_a_text_is_one_undecodable_message() {
    for odd in [
        &b"{\"seq\":1,\"item_list\":[{\"type\":1,\"text_item\":{\"text\":\"caf\xe9\"}}]}"[..],
        b"{\"seq\":1,\"from_user_id\":\"\xff\xfe\"}",
        b"{\"seq\":1,\"item_list\":[{\"type\":1,\"text_item\":{\"text\":\"\xc3\"}}]}",
    ] {
        let body = batch(odd);
        let resp = decode_updates(&body).unwrap();
        let msgs = resp.messages();
        let err = msgs[0].as_ref().unwrap_err();
        assert_eq!(err.kind(), MessageErrorKind::InvalidUtf8);
        assert_eq!(&*err.raw_bytes(), odd);
        // The message text and Debug never show the raw bytes.
        assert!(!format!("{err:?}").contains("caf"));
        good_survives(&resp, 1);
    }
}

#[test]
fn a_bare_word_in_a_message_is_one_undecodable_message() {
    let body = batch(br#"{"seq":1,"message_state":tru}"#);
    let resp = decode_updates(&body).unwrap();
    assert_eq!(
        resp.messages()[0].as_ref().unwrap_err().kind(),
        MessageErrorKind::Syntax
    );
    good_survives(&resp, 1);
}

#[test]
fn status_codes_as_strings_and_integral_floats() {
    for (ret, stale) in [
        (r#""0""#, false),
        ("0.0", false),
        ("-0.0", false),
        (r#"" 0 ""#, false),
        ("0e5", false),
        (r#""-14""#, true),
        ("-14.0", true),
    ] {
        let body = format!(r#"{{"ret":{ret},"msgs":[{GOOD}],"get_updates_buf":"NEXT"}}"#);
        let resp = decode_updates(body.as_bytes()).unwrap();
        if stale {
            assert!(
                matches!(resp.status(), Err(ApiError::StaleToken { .. })),
                "{ret}"
            );
        } else {
            good_survives(&resp, 0);
        }
        // The errcode field is read the same way.
        let body = format!(r#"{{"errcode":{ret},"msgs":[{GOOD}],"get_updates_buf":"NEXT"}}"#);
        let resp = decode_updates(body.as_bytes()).unwrap();
        assert_eq!(resp.status().is_err(), stale, "errcode {ret}");
    }
}

#[test]
fn an_unreadable_status_counts_as_absent() {
    for ret in ["1.5", r#""ok""#, "true", "[]", "{}", "1e400"] {
        let body = format!(r#"{{"ret":{ret},"msgs":[{GOOD}],"get_updates_buf":"NEXT"}}"#);
        let resp = decode_updates(body.as_bytes()).unwrap();
        assert_eq!(resp.ret, None, "{ret}");
        good_survives(&resp, 0);
    }
}

#[test]
fn long_poll_timeouts_are_clamped() {
    use std::time::Duration;
    for (t, want) in [
        ("3.5", Some(Duration::from_secs(1))),
        (r#""35000""#, Some(Duration::from_secs(35))),
        ("35000.0", Some(Duration::from_secs(35))),
        (
            "1e400",
            Some(Duration::from_millis(MAX_LONG_POLL_TIMEOUT_MS as u64)),
        ),
        ("-5", None),
        (r#""soon""#, None),
        ("null", None),
    ] {
        let body = format!(
            r#"{{"ret":0,"msgs":[{GOOD}],"get_updates_buf":"NEXT","longpolling_timeout_ms":{t}}}"#
        );
        let resp = decode_updates(body.as_bytes()).unwrap();
        assert_eq!(resp.long_poll_timeout(), want, "{t}");
        good_survives(&resp, 0);
    }
}

#[test]
fn a_cursor_in_any_scalar_is_kept_as_text() {
    for (c, want) in [
        ("12345678901234567890123", Some("12345678901234567890123")),
        ("1.50", Some("1.50")),
        ("1e400", Some("1e400")),
        ("true", Some("true")),
        (r#""B64==""#, Some("B64==")),
        ("null", None),
        (r#""""#, None),
    ] {
        let body = format!(r#"{{"msgs":[{GOOD}],"get_updates_buf":{c}}}"#);
        let resp = decode_updates(body.as_bytes()).unwrap();
        assert_eq!(resp.next_cursor().map(|s| s.expose()), want, "{c}");
    }
}

#[test]
fn a_body_without_a_readable_cursor_is_refused() {
    for body in [
        &br#"{"msgs":[],"get_updates_buf":{"a":1}}"#[..],
        br#"{"msgs":[],"get_updates_buf":["x"]}"#,
        b"{\"msgs\":[],\"get_updates_buf\":\"\xff\"}",
    ] {
        assert!(matches!(
            decode_updates(body),
            Err(DecodeError::UnreadableCursor)
        ));
    }
    for body in [
        &b"<html>502 Bad Gateway</html>"[..],
        br#"{"msgs":[{"seq":1}"#,
        br#"["not","an","object"]"#,
        br#"{"msgs":[]}{"msgs":[]}"#,
    ] {
        let e = decode_updates(body).unwrap_err();
        assert!(matches!(e, DecodeError::Malformed { .. }), "{e}");
        assert!(e.is_unreadable());
    }
}

#[test]
fn other_envelope_shapes() {
    // msgs that is not an array: one visible undecodable entry, not a silent drop.
    let resp = decode_updates(br#"{"msgs":5,"get_updates_buf":"N"}"#).unwrap();
    assert_eq!(resp.message_count(), 1);
    assert!(resp.messages()[0].is_err());
    // Repeated keys: the last wins (serde_json alone refuses the body).
    let resp = decode_updates(br#"{"ret":-2,"ret":0,"get_updates_buf":"A","get_updates_buf":"B"}"#)
        .unwrap();
    assert!(resp.status().is_ok());
    assert_eq!(resp.next_cursor().unwrap().expose(), "B");
    // An unknown field with invalid UTF-8 is kept, lossily.
    let resp = decode_updates(b"{\"x\":\"\xff\",\"get_updates_buf\":\"B\"}").unwrap();
    assert!(resp.extra.contains_key("x"));
    // errmsg with invalid UTF-8 is kept lossily.
    let resp = decode_updates(b"{\"ret\":-2,\"errmsg\":\"bad \xff\"}").unwrap();
    assert_eq!(resp.errmsg.as_deref(), Some("bad \u{fffd}"));
    // Whitespace everywhere.
    let resp =
        decode_updates(b" \n{ \"msgs\" : [ 1 , {\"seq\":3} ] , \"get_updates_buf\" : \"B\" }\n")
            .unwrap();
    assert_eq!(resp.message_count(), 2);
    assert_eq!(resp.messages()[1].as_ref().unwrap().seq, Some(3));
}

#[test]
fn order_and_indices_hold_across_parsed_and_unparsed_messages() {
    let body = b"{\"msgs\":[{\"seq\":1},{\"message_id\":1e400},{\"seq\":3},\"\xff\",{\"seq\":5}],\"get_updates_buf\":\"B\"}";
    let resp = decode_updates(body).unwrap();
    let out = resp.into_messages();
    let seqs: Vec<Option<u64>> = out
        .iter()
        .map(|m| m.as_ref().ok().and_then(|m| m.seq))
        .collect();
    assert_eq!(seqs, vec![Some(1), None, Some(3), None, Some(5)]);
    for (i, m) in out.iter().enumerate() {
        if let Err(e) = m {
            assert_eq!(e.index(), i);
        }
    }
}

/// The fuzz seeds of `proto_getupdates` hold the properties the fuzz target checks: the tolerant
/// decoder accepts what the strict one accepts, with the same envelope, cursor and count; the
/// poisoned seeds decode with their odd message isolated.
#[test]
fn fuzz_seeds_hold_the_target_properties() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut seen = 0;
    for dir in ["corpus/proto_getupdates", "regressions/proto_getupdates"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let tolerant = decode_updates(&bytes);
            if let Ok(strict) = ilink_proto::decode::<GetUpdatesResponse>(&bytes) {
                let t = tolerant
                    .as_ref()
                    .unwrap_or_else(|e| panic!("{path:?}: {e}"));
                assert_eq!(t.ret, strict.ret, "{path:?}");
                assert_eq!(t.errcode, strict.errcode, "{path:?}");
                assert_eq!(t.next_cursor(), strict.next_cursor(), "{path:?}");
                assert_eq!(t.message_count(), strict.message_count(), "{path:?}");
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("poison-") {
                let t = tolerant.as_ref().unwrap();
                assert!(!t.unparsed_msgs.is_empty(), "{name}");
                assert!(t.messages().iter().any(Result::is_ok), "{name}");
            }
            if name.starts_with("envelope-") && name != "envelope-cursor-object" {
                assert!(tolerant.is_ok(), "{name}");
            }
            seen += 1;
        }
    }
    assert!(seen >= 26, "{seen} seeds");
}

proptest::proptest! {
    /// Whatever message of a batch is poisoned, and however, the others decode in order, the
    /// count holds and the cursor is read.
    #[test]
    fn any_poisoned_message_fails_alone(
        n in 1usize..12,
        pick in 0usize..12,
        poison in 0usize..5,
        text in "[a-zA-Z0-9 ]{0,20}",
    ) {
        let k = pick % n;
        let mut body = br#"{"ret":0,"msgs":["#.to_vec();
        for i in 0..n {
            if i > 0 {
                body.push(b',');
            }
            if i == k {
                let odd: &[u8] = match poison {
                    0 => br#"{"message_id":1e400}"#,
                    1 => b"{\"from_user_id\":\"\xff\"}",
                    2 => br#"{"seq":tru}"#,
                    3 => br#"{"seq":"not a number"}"#,
                    _ => br#"[1,2,3]"#,
                };
                body.extend_from_slice(odd);
            } else {
                body.extend_from_slice(
                    format!(r#"{{"seq":{},"item_list":[{{"type":1,"text_item":{{"text":"{text}"}}}}]}}"#, i + 1)
                        .as_bytes(),
                );
            }
        }
        body.extend_from_slice(br#"],"get_updates_buf":"NEXT"}"#);
        let resp = decode_updates(&body).unwrap();
        proptest::prop_assert_eq!(resp.message_count(), n);
        proptest::prop_assert_eq!(resp.next_cursor().unwrap().expose(), "NEXT");
        for (i, m) in resp.into_messages().into_iter().enumerate() {
            if i == k {
                proptest::prop_assert_eq!(m.unwrap_err().index(), k);
            } else {
                let m = m.unwrap();
                proptest::prop_assert_eq!(m.seq, Some(i as u64 + 1));
                proptest::prop_assert_eq!(m.body_text(), Some(text.as_str()));
            }
        }
    }
}
