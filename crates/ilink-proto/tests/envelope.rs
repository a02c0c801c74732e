//! The envelope classification table (§5, §19), in all three judgement modes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ilink_proto::{ApiError, Endpoint, Envelope, ThrottleReason, decode};

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

#[test]
fn classification_table() {
    use ApiError::*;
    let stale = |m: Option<String>| Err(StaleToken { errmsg: m });
    let throttled = |m: Option<String>| Err(Throttled { errmsg: m });
    // body, lenient status (§19, our client), sendmessage (ret only), getconfig (ret required)
    let table: Vec<(&str, Result<(), ApiError>, bool, bool)> = vec![
        ("{}", Ok(()), true, false),
        (r#"{"ret":0}"#, Ok(()), true, true),
        (r#"{"ret":0,"errcode":0}"#, Ok(()), true, true),
        (r#"{"ret":0,"errmsg":""}"#, Ok(()), true, true),
        (r#"{"errmsg":"only a message"}"#, Ok(()), true, false),
        (
            r#"{"errcode":-14,"errmsg":"session timeout"}"#,
            stale(s("session timeout")),
            true,
            false,
        ),
        (r#"{"ret":-14}"#, stale(None), false, false),
        (
            r#"{"ret":-14,"errcode":-14,"errmsg":"session timeout"}"#,
            stale(s("session timeout")),
            false,
            false,
        ),
        (r#"{"ret":0,"errcode":-14}"#, stale(None), true, false),
        (r#"{"ret":-2,"errcode":-14}"#, stale(None), false, false),
        (r#"{"ret":-2,"errcode":0}"#, throttled(None), false, false),
        (r#"{"ret":-2}"#, throttled(None), false, false),
        (
            r#"{"ret":-2,"errmsg":"invalid arguments"}"#,
            throttled(s("invalid arguments")),
            false,
            false,
        ),
        (
            r#"{"errcode":-2,"errmsg":"prepare failed"}"#,
            throttled(s("prepare failed")),
            true,
            false,
        ),
        (
            r#"{"ret":-3}"#,
            Err(BadTarget { errmsg: None }),
            false,
            false,
        ),
        (
            r#"{"ret":-1,"errmsg":"x"}"#,
            Err(Failed { errmsg: s("x") }),
            false,
            false,
        ),
        (
            r#"{"ret":-5,"errcode":-6,"errmsg":"m"}"#,
            Err(Other {
                ret: Some(-5),
                errcode: Some(-6),
                errmsg: s("m"),
            }),
            false,
            false,
        ),
        (
            r#"{"errcode":42}"#,
            Err(Other {
                ret: None,
                errcode: Some(42),
                errmsg: None,
            }),
            true,
            false,
        ),
        (
            r#"{"ret":7,"errcode":0}"#,
            Err(Other {
                ret: Some(7),
                errcode: Some(0),
                errmsg: None,
            }),
            false,
            false,
        ),
    ];
    for (body, lenient, ret_only_ok, requiring_ret_ok) in table {
        let env: Envelope = decode(body.as_bytes()).unwrap();
        assert_eq!(env.status(), lenient, "{body}");
        assert_eq!(
            env.status_ret_only().is_ok(),
            ret_only_ok,
            "{body} ret-only"
        );
        assert_eq!(
            env.status_requiring_ret().is_ok(),
            requiring_ret_ok,
            "{body} requiring ret"
        );
        assert_eq!(
            Endpoint::GetUpdates.official_status(&env),
            lenient,
            "{body}"
        );
        assert_eq!(
            Endpoint::SendMessage.official_status(&env).is_ok(),
            ret_only_ok
        );
        assert_eq!(
            Endpoint::GetConfig.official_status(&env).is_ok(),
            requiring_ret_ok
        );
        assert!(Endpoint::GetUploadUrl.official_status(&env).is_ok());
        if let Err(e) = &lenient {
            let text = e.to_string();
            assert!(!text.is_empty());
            if let Some(code) = e.code() {
                assert!(text.contains(&code.to_string()), "{text}");
            }
        }
    }
}

#[test]
fn error_accessors_and_messages() {
    let e = Envelope::error(-14, Some("session timeout"))
        .status()
        .unwrap_err();
    assert!(e.is_stale_token());
    assert_eq!(e.code(), Some(-14));
    assert_eq!(e.errmsg(), Some("session timeout"));
    assert_eq!(e.throttle_reason(), None);
    assert!(e.to_string().contains("log in again"), "{e}");
    let t = Envelope::error(-2, None).status().unwrap_err();
    assert_eq!(t.throttle_reason(), Some(ThrottleReason::Unknown));
    assert!(!t.to_string().contains("errmsg"), "{t}");
    let m = Envelope::default().status_requiring_ret().unwrap_err();
    assert_eq!(m.code(), None);
    assert!(m.to_string().contains("ret:0"), "{m}");
    let o = Envelope {
        ret: Some(-99),
        errcode: None,
        errmsg: None,
    }
    .status()
    .unwrap_err();
    assert_eq!(o.code(), Some(-99));
}

#[test]
fn envelope_ignores_other_fields_and_types() {
    let env: Envelope = decode(br#"{"ret":0,"msgs":[{"x":1}],"get_updates_buf":"B"}"#).unwrap();
    assert_eq!(env, Envelope::ok());
    // A wrongly typed envelope field is a decode error, not a panic or a success.
    assert!(decode::<Envelope>(br#"{"ret":"0"}"#).is_err());
}
