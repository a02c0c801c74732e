//! Every request and response captured from Tencent's official client (2.4.9) decodes,
//! re-encodes unchanged, and the same request built with our types serializes to the
//! very same bytes (same fields, values and key order).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use ilink_proto::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const WIRE: &str = include_str!("data/official-client-wire.json");
const MONITOR: &str = include_str!("data/official-client-monitor-wire.json");

fn base() -> BaseInfo {
    BaseInfo::for_version(&CompatVersion::DEFAULT, None)
}

/// Decodes `body` as `T`, checks it re-encodes to the same JSON value, returns it.
fn round_trip<T: Serialize + DeserializeOwned>(body: &str) -> T {
    let value: Value = serde_json::from_str(body).unwrap();
    let typed: T = decode(body.as_bytes()).unwrap();
    assert_eq!(
        serde_json::to_value(&typed).unwrap(),
        value,
        "re-encode of {body}"
    );
    typed
}

/// Our serialization of `built` must equal the captured body byte for byte.
fn assert_same_bytes<T: Serialize>(built: &T, body: &str) {
    assert_eq!(serde_json::to_string(built).unwrap(), body);
}

/// Checks one captured request body: it decodes, re-encodes, and we build it identically.
/// Returns the endpoint it was checked as.
fn check_request(path: &str, body: &str) -> Endpoint {
    let endpoint = Endpoint::from_path(path).unwrap_or_else(|| panic!("unknown path {path}"));
    match endpoint {
        Endpoint::GetUpdates => {
            let req: GetUpdatesRequest = round_trip(body);
            let built = GetUpdatesRequest::new(req.get_updates_buf.clone().unwrap(), base());
            assert_same_bytes(&built, body);
        }
        Endpoint::SendMessage => {
            let req: SendMessageRequest = round_trip(body);
            let msg = req.msg.as_ref().unwrap();
            assert_eq!(msg.items().len(), 1, "the official client sends one item");
            let item = msg.items()[0].clone();
            let rebuilt_item = match item.item_type {
                ItemType::Text => {
                    MessageItem::text(item.text_item.as_ref().unwrap().text.clone().unwrap())
                }
                ItemType::Image => {
                    let image = item.image_item.as_ref().unwrap();
                    let media = image.media.as_ref().unwrap();
                    MessageItem::image(
                        CdnMedia::outbound(
                            media.encrypt_query_param.clone().unwrap(),
                            media.aes_key.clone().unwrap(),
                        ),
                        image.mid_size.unwrap(),
                    )
                }
                other => panic!("unexpected item type {other:?}"),
            };
            let mut out = WeixinMessage::outbound(
                msg.to_user_id.clone().unwrap(),
                msg.client_id.clone().unwrap(),
                vec![rebuilt_item],
                msg.context_token.clone(),
            );
            if let Some(run_id) = &msg.run_id {
                out = out.with_run_id(run_id.clone());
            }
            assert_same_bytes(&SendMessageRequest::new(out, base()), body);
        }
        Endpoint::GetConfig => {
            let req: GetConfigRequest = round_trip(body);
            let built = GetConfigRequest::new(
                req.ilink_user_id.clone().unwrap(),
                req.context_token.clone(),
                base(),
            );
            assert_same_bytes(&built, body);
        }
        Endpoint::SendTyping => {
            let req: SendTypingRequest = round_trip(body);
            let built = SendTypingRequest::new(
                req.ilink_user_id.clone().unwrap(),
                req.typing_ticket.clone().unwrap(),
                req.status.unwrap(),
                base(),
            );
            assert!(req.status.unwrap().is_known());
            assert_same_bytes(&built, body);
        }
        Endpoint::NotifyStart | Endpoint::NotifyStop => {
            let _: NotifyRequest = round_trip(body);
            assert_same_bytes(&NotifyRequest::new(base()), body);
        }
        Endpoint::GetUploadUrl => {
            let req: GetUploadUrlRequest = round_trip(body);
            let built = GetUploadUrlRequest::new(
                req.filekey.clone().unwrap(),
                req.media_type.unwrap(),
                req.to_user_id.clone().unwrap(),
                req.rawsize.unwrap(),
                req.rawfilemd5.clone().unwrap(),
                req.aeskey.clone().unwrap(),
                base(),
            );
            // filesize is computed by us from rawsize, and must match the capture.
            assert_same_bytes(&built, body);
        }
        Endpoint::GetBotQrCode => {
            let req: GetBotQrCodeRequest = round_trip(body);
            assert_same_bytes(
                &GetBotQrCodeRequest::new(req.local_token_list.clone()),
                body,
            );
        }
        other => panic!("no request body expected for {other:?}"),
    }
    endpoint
}

#[test]
fn official_client_requests_decode_and_rebuild_identically() {
    let wire: Value = serde_json::from_str(WIRE).unwrap();
    let mut checked = Vec::new();
    for entry in wire["wire"].as_array().unwrap() {
        let path = entry["path"].as_str().unwrap();
        let Some(api_path) = path
            .strip_prefix("/ilink/bot/")
            .map(|p| format!("ilink/bot/{p}"))
        else {
            continue; // CDN traffic: checked in `cdn_traffic_matches_constants`
        };
        if let Some(body) = entry["body"].as_str() {
            checked.push(check_request(&api_path, body));
        } else {
            // GET requests carry no body.
            assert_eq!(entry["method"], "GET");
            assert_eq!(Endpoint::from_path(&api_path).unwrap().method(), "GET");
        }
    }
    use Endpoint::*;
    for e in [
        GetUpdates,
        SendMessage,
        GetConfig,
        SendTyping,
        NotifyStart,
        NotifyStop,
        GetUploadUrl,
        GetBotQrCode,
    ] {
        assert!(checked.contains(&e), "fixture covers {e:?}");
    }
    assert_eq!(checked.len(), 10);
}

#[test]
fn monitor_requests_decode_and_rebuild_identically() {
    let wire: Value = serde_json::from_str(MONITOR).unwrap();
    let mut n = 0;
    for entry in wire["wire"].as_array().unwrap() {
        let path = entry["p"].as_str().unwrap();
        if let Some(p) = path
            .strip_prefix('/')
            .filter(|p| p.starts_with("ilink/bot/"))
        {
            check_request(p, entry["body"].as_str().unwrap());
            n += 1;
        }
    }
    assert_eq!(n, 7);
    // The persisted cursor file is `{"get_updates_buf": ...}`: it is a GetUpdatesRequest
    // shape without base_info.
    let files = &wire["files"];
    let sync: GetUpdatesRequest = round_trip(files["bot-im-bot.sync.json"].as_str().unwrap());
    assert_eq!(sync.get_updates_buf.unwrap().expose(), "CURSOR-A");
}

#[test]
fn sendmessage_msg_key_order_matches() {
    let wire: Value = serde_json::from_str(MONITOR).unwrap();
    let body = wire["wire"][4]["body"].as_str().unwrap();
    assert!(body.contains("run_id"));
    let msg = WeixinMessage::outbound(
        "u1@im.wechat",
        "openclaw-weixin:1795301334571-f1ed2789",
        vec![MessageItem::text(
            "**Echo**: look at this  斜体 (media=image/*)",
        )],
        Some(Secret::from("CTX-U1")),
    )
    .with_run_id("a884a959-1995-4e28-8f93-93066065c573");
    let ours = serde_json::to_string(&SendMessageRequest::new(msg, base())).unwrap();
    let keys = |s: &str| -> Vec<String> {
        let order = [
            "from_user_id",
            "to_user_id",
            "client_id",
            "message_type",
            "message_state",
            "item_list",
            "context_token",
            "run_id",
            "base_info",
        ];
        let mut found: Vec<(usize, String)> = order
            .iter()
            .filter_map(|k| s.find(&format!("\"{k}\"")).map(|i| (i, (*k).to_owned())))
            .collect();
        found.sort();
        found.into_iter().map(|(_, k)| k).collect()
    };
    assert_eq!(keys(&ours), keys(body));
    assert_eq!(keys(&ours).len(), 9);
    assert_eq!(ours, body);
}

#[test]
fn official_client_responses_decode() {
    let wire: Value = serde_json::from_str(WIRE).unwrap();
    let results = &wire["results"];

    let updates: GetUpdatesResponse = round_trip(&results["getUpdates"].to_string());
    updates.status().unwrap();
    assert_eq!(updates.next_cursor().unwrap().expose(), "BUF-2");
    assert_eq!(
        updates.long_poll_timeout(),
        Some(std::time::Duration::from_secs(35))
    );
    let msgs = updates.messages();
    assert_eq!(msgs.len(), 1);
    let m = msgs[0].as_ref().unwrap();
    assert_eq!(
        m.message_id.as_ref().unwrap().as_str(),
        "7448678501208393123"
    );
    assert!(!m.message_id.as_ref().unwrap().is_number());
    assert_eq!(m.message_type, Some(MessageType::User));
    assert_eq!(m.message_state, Some(MessageState::Finish));
    assert_eq!(m.context_token.as_ref().unwrap().expose(), "CTX-1");
    assert_eq!(m.body_text(), Some("hi"));
    let item = &m.items()[0];
    assert_eq!(
        item.msg_id.as_ref().unwrap().as_u64(),
        Some(7448678501208393124)
    );
    let r = item.ref_msg.as_ref().unwrap();
    assert_eq!(
        r.svr_id.as_ref().unwrap().as_u64(),
        Some(7448678501208390000)
    );
    assert_eq!(r.title.as_deref(), Some("t"));

    let config: GetConfigResponse = round_trip(&results["getConfig"].to_string());
    Endpoint::GetConfig
        .official_status(&config.envelope())
        .unwrap();
    assert_eq!(config.typing_ticket.unwrap().expose(), "VElDS0VU");
    for k in ["notifyStart", "notifyStop"] {
        let n: NotifyResponse = round_trip(&results[k].to_string());
        assert_eq!(n.ret, Some(0));
    }

    // `sendText` / `sendImage` / `qrStart` / `qrWait` / `downloads` are the client's own
    // return values, not wire bodies. The server id it reported for sendmessage is a
    // uint64 above 2^53, sent as a JSON number: it must survive exactly.
    let server_id = results["sendText"]["serverMessageId"].as_str().unwrap();
    let body = format!(r#"{{"ret":0,"message_id":{server_id}}}"#);
    let sent: SendMessageResponse = round_trip(&body);
    assert_eq!(sent.message_id.as_ref().unwrap().as_str(), server_id);
    assert_eq!(serde_json::to_string(&sent).unwrap(), body);

    // The QR flow's wire responses, reconstructed from the client's results.
    let qr_url = results["qrStart"]["qrcodeUrl"].as_str().unwrap();
    let qr: GetBotQrCodeResponse =
        round_trip(&json!({"qrcode": "QRKEY123", "qrcode_img_content": qr_url}).to_string());
    assert_eq!(qr.qrcode.as_deref(), Some("QRKEY123"));
    let w = &results["qrWait"];
    let status: QrCodeStatusResponse = round_trip(
        &json!({
            "status": "confirmed",
            "bot_token": w["botToken"],
            "ilink_bot_id": w["accountId"],
            "baseurl": w["baseUrl"],
            "ilink_user_id": w["userId"],
        })
        .to_string(),
    );
    assert_eq!(status.status, QrStatus::Confirmed);
    assert!(!format!("{status:?}").contains("BOTTOKEN"));
}

#[test]
fn headers_match_constants() {
    let wire: Value = serde_json::from_str(WIRE).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut uins = 0;
    for entry in wire["wire"].as_array().unwrap() {
        let path = entry["path"].as_str().unwrap();
        if !path.starts_with("/ilink/bot/") {
            continue;
        }
        let h = entry["headers"].as_object().unwrap();
        assert_eq!(h[&HEADER_APP_ID.to_ascii_lowercase()], APP_ID);
        assert_eq!(
            h[&HEADER_APP_CLIENT_VERSION.to_ascii_lowercase()],
            CompatVersion::DEFAULT
                .client_version_header_value()
                .as_str()
        );
        let endpoint = Endpoint::from_path(&path[1..]).unwrap();
        let auth_type = h.get(&HEADER_AUTHORIZATION_TYPE.to_ascii_lowercase());
        if entry["method"] == "POST" {
            assert_eq!(auth_type.unwrap(), AUTHORIZATION_TYPE_VALUE);
            assert_eq!(h["content-type"], CONTENT_TYPE_JSON);
            let uin = h[&HEADER_WECHAT_UIN.to_ascii_lowercase()].as_str().unwrap();
            let decimal = String::from_utf8(b64.decode(uin).unwrap()).unwrap();
            assert_eq!(uin_header_value(decimal.parse().unwrap()), uin);
            uins += 1;
            let auth = h.get(&HEADER_AUTHORIZATION.to_ascii_lowercase());
            if endpoint.is_authenticated() {
                assert_eq!(auth.unwrap(), &format!("{BEARER_PREFIX}BOTTOKEN"));
            } else {
                assert!(auth.is_none(), "{path} carries no token");
            }
        } else {
            assert!(auth_type.is_none());
            assert!(!h.contains_key(&HEADER_WECHAT_UIN.to_ascii_lowercase()));
        }
        if endpoint == Endpoint::GetBotQrCode {
            let q = entry["query"].as_object().unwrap();
            let [(k, v)] = GetBotQrCodeRequest::query_pairs();
            assert_eq!(q[k], v);
        }
        if endpoint == Endpoint::GetQrCodeStatus {
            let q = entry["query"].as_object().unwrap();
            let query = QrCodeStatusQuery {
                qrcode: "QRKEY123".into(),
                verify_code: None,
            };
            let pairs = query.query_pairs();
            assert_eq!(q.len(), pairs.len());
            for (k, v) in pairs {
                assert_eq!(q[k], v);
            }
        }
    }
    assert_eq!(uins, 10);
}

#[test]
fn cdn_traffic_matches_constants() {
    let wire: Value = serde_json::from_str(WIRE).unwrap();
    let cdn_prefix = DEFAULT_CDN_BASE_URL.rsplit_once(".com").unwrap().1; // "/c2c"
    let mut n = 0;
    for entry in wire["wire"].as_array().unwrap() {
        let path = entry["path"].as_str().unwrap();
        let Some(rest) = path.strip_prefix(cdn_prefix) else {
            continue;
        };
        n += 1;
        let q = entry["query"].as_object().unwrap();
        assert!(q.contains_key(QUERY_ENCRYPTED_PARAM));
        let h = entry["headers"].as_object().unwrap();
        assert!(!h.contains_key(&HEADER_AUTHORIZATION.to_ascii_lowercase()));
        if rest == format!("/{CDN_UPLOAD}") {
            assert!(q.contains_key(QUERY_FILEKEY));
            assert_eq!(h["content-type"], CONTENT_TYPE_OCTET_STREAM);
            // Ciphertext of 100 plaintext bytes (see the getuploadurl capture).
            assert_eq!(
                entry["bodyLen"].as_u64(),
                Some(GetUploadUrlRequest::ciphertext_size(100))
            );
        } else {
            assert_eq!(rest, format!("/{CDN_DOWNLOAD}"));
            assert_eq!(entry["method"], "GET");
        }
    }
    assert_eq!(n, 5);
}

/// docs/protocol.md §12.1 [obs]: the live server wants the chat's `context_token` in the upload
/// grant. Adding it to the captured request changes nothing else: the official client's
/// fields keep their order and values, and the token goes just before `base_info`.
#[test]
fn upload_grant_with_context_token_only_adds_that_field() {
    let wire: Value = serde_json::from_str(WIRE).unwrap();
    let body = wire["wire"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"].as_str().unwrap_or("").ends_with("/getuploadurl"))
        .and_then(|e| e["body"].as_str())
        .unwrap();
    let req: GetUploadUrlRequest = decode(body.as_bytes()).unwrap();
    assert!(req.context_token.is_none(), "2.4.9 does not send it");
    let with = GetUploadUrlRequest::new(
        req.filekey.clone().unwrap(),
        req.media_type.unwrap(),
        req.to_user_id.clone().unwrap(),
        req.rawsize.unwrap(),
        req.rawfilemd5.clone().unwrap(),
        req.aeskey.clone().unwrap(),
        base(),
    )
    .with_context_token(Secret::from("ctx-211"));
    let out = serde_json::to_string(&with).unwrap();
    let expected = body.replacen(
        ",\"base_info\":",
        ",\"context_token\":\"ctx-211\",\"base_info\":",
        1,
    );
    assert_ne!(expected, body);
    assert_eq!(out, expected);
    // It decodes back with the token, and Debug keeps it secret.
    let back: GetUploadUrlRequest = decode(out.as_bytes()).unwrap();
    assert_eq!(
        back.context_token.as_ref().map(Secret::expose),
        Some("ctx-211")
    );
    assert!(!format!("{back:?}").contains("ctx-211"));
}
