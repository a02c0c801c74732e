//! The bot API and CDN endpoints.

use std::sync::Arc;

use bytes::Bytes;
use ilink_crypto::MediaKey;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::config::{UploadGrantRefusal, UploadUrlMode};
use crate::fault::{Endpoint, Fault};
use crate::model::{DropReason, TypingEvent, TypingState, UploadRecord};
use crate::server::{Incoming2, Reply};
use crate::state::{AuthError, PendingUpload, Shared, stale_token_body};
use crate::wire;

fn is_hex32(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

fn non_empty<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

pub(crate) async fn dispatch(
    shared: &Arc<Shared>,
    endpoint: Endpoint,
    inc: &Incoming2,
    problems: &mut Vec<String>,
) -> Reply {
    match endpoint {
        Endpoint::GetBotQrcode => return get_bot_qrcode(shared, inc),
        Endpoint::GetQrcodeStatus => return get_qrcode_status(shared, inc),
        Endpoint::CdnUpload => return cdn_upload(shared, inc).await,
        Endpoint::CdnDownload => return cdn_download(shared, inc),
        _ => {}
    }
    let body = inc.json();
    let now = shared.now_ms();
    let token = if inc.header("authorizationtype") == Some("ilink_bot_token") {
        inc.header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
    } else {
        None
    };
    let auth = shared.lock().authenticate(&shared.config, token, now);
    let bot_id = match auth {
        Ok(b) => b,
        Err(e) => {
            problems.push(match e {
                AuthError::Missing => "no bot token".to_owned(),
                AuthError::Unknown => "unknown bot token".to_owned(),
                AuthError::Stale => "stale bot token".to_owned(),
            });
            let answer = stale_token_body();
            if endpoint == Endpoint::SendMessage {
                let mut st = shared.lock();
                let bot = st.bot_of_token(token);
                st.record_unprocessed_send(
                    DropReason::StaleToken,
                    bot.as_deref(),
                    &body,
                    answer.clone(),
                    now,
                );
                shared.activity.notify_waiters();
            }
            return Reply::json(shared, &answer);
        }
    };
    match endpoint {
        Endpoint::GetUpdates => {
            if !body.get("get_updates_buf").is_some_and(Value::is_string) {
                problems.push("getupdates without get_updates_buf (send \"\" at first)".to_owned());
            }
            get_updates(shared, &bot_id, &body).await
        }
        Endpoint::SendMessage => {
            let (answer, outcome) =
                shared
                    .lock()
                    .send_message(&shared.config, &bot_id, &body, now, problems);
            match &outcome {
                Ok(d) => tracing::info!(
                    bot = %bot_id,
                    to = %d.to_user_id,
                    message_id = d.message_id,
                    item_type = ?d.item_type(),
                    "sim delivered"
                ),
                Err(reason) => tracing::warn!(bot = %bot_id, %reason, "sim dropped a sendmessage"),
            }
            shared.activity.notify_waiters();
            Reply::json(shared, &answer)
        }
        Endpoint::GetConfig => {
            let Some(user) = non_empty(&body, "ilink_user_id") else {
                problems.push("getconfig without ilink_user_id".to_owned());
                return Reply::json(
                    shared,
                    &json!({"ret": -2, "errmsg": "ilink_user_id required"}),
                );
            };
            let ticket = shared.lock().typing_ticket(&bot_id, user);
            Reply::json(
                shared,
                &json!({"ret": 0, "errmsg": "", "typing_ticket": ticket}),
            )
        }
        Endpoint::SendTyping => send_typing(shared, &bot_id, &body, now, problems),
        Endpoint::NotifyStart | Endpoint::NotifyStop => {
            if let Some(bot) = shared.lock().bots.get_mut(&bot_id) {
                if endpoint == Endpoint::NotifyStart {
                    bot.notify_started += 1;
                } else {
                    bot.notify_stopped += 1;
                }
            }
            Reply::json(shared, &json!({"ret": 0, "errmsg": ""}))
        }
        Endpoint::GetUploadUrl => get_upload_url(shared, &bot_id, &body, problems),
        Endpoint::GetBotQrcode
        | Endpoint::GetQrcodeStatus
        | Endpoint::CdnUpload
        | Endpoint::CdnDownload => Reply::text(404, "not found"),
    }
}

async fn get_updates(shared: &Arc<Shared>, bot_id: &str, body: &Value) -> Reply {
    let cfg = &shared.config;
    let cursor = body
        .get("get_updates_buf")
        .and_then(Value::as_str)
        .unwrap_or("");
    let hold = cfg.longpolling_timeout.saturating_sub(cfg.longpoll_margin);
    let deadline = Instant::now() + hold;
    let start = shared.lock().cursor_position(bot_id, cursor);
    let cursor_is_ours = wire::decode_cursor(cursor)
        .is_some_and(|(_, owner)| owner.split(':').next() == Some(bot_id));
    let (msgs, next_cursor, position) = loop {
        let notified = shared.inbox_changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut st = shared.lock();
            let now = shared.now_ms();
            let (msgs, end) = st.messages_from(bot_id, start);
            if !msgs.is_empty() {
                match st.faults.take(Endpoint::GetUpdates, Fault::is_duplicate) {
                    Some(Fault::DuplicateBatch) => {
                        let c = if cursor_is_ours {
                            cursor.to_owned()
                        } else {
                            st.cursor_for(bot_id, start, now)
                        };
                        break (msgs, c, start);
                    }
                    Some(_) => {
                        let doubled = msgs.iter().flat_map(|m| [m.clone(), m.clone()]).collect();
                        break (doubled, st.cursor_for(bot_id, end, now), end);
                    }
                    None => break (msgs, st.cursor_for(bot_id, end, now), end),
                }
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            let st = shared.lock();
            let c = if cursor_is_ours {
                cursor.to_owned()
            } else {
                st.cursor_for(bot_id, start, shared.now_ms())
            };
            break (Vec::new(), c, start);
        }
    };
    let mut out = serde_json::Map::new();
    if cfg.getupdates_ret {
        out.insert("ret".into(), json!(0));
    }
    out.insert("msgs".into(), Value::Array(msgs));
    out.insert(
        "sync_buf".into(),
        json!(wire::sync_buf(position, shared.now_ms())),
    );
    out.insert("get_updates_buf".into(), json!(next_cursor));
    if cfg.advertise_longpolling_timeout {
        out.insert(
            "longpolling_timeout_ms".into(),
            json!(u64::try_from(cfg.longpolling_timeout.as_millis()).unwrap_or(u64::MAX)),
        );
    }
    Reply::json(shared, &Value::Object(out))
}

fn send_typing(
    shared: &Arc<Shared>,
    bot_id: &str,
    body: &Value,
    now: u64,
    problems: &mut Vec<String>,
) -> Reply {
    let Some(user) = non_empty(body, "ilink_user_id") else {
        problems.push("sendtyping without ilink_user_id".to_owned());
        return Reply::json(
            shared,
            &json!({"ret": -2, "errmsg": "ilink_user_id required"}),
        );
    };
    let state = match body.get("status").and_then(Value::as_i64) {
        Some(1) => TypingState::Typing,
        Some(2) => TypingState::Cancelled,
        _ => {
            problems.push("sendtyping status is not 1 or 2".to_owned());
            return Reply::json(shared, &json!({"ret": -2, "errmsg": "invalid arguments"}));
        }
    };
    let ticket = body
        .get("typing_ticket")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut st = shared.lock();
    let valid = st.ticket_valid(ticket, bot_id, user);
    st.push_typing_event(TypingEvent {
        bot_id: bot_id.to_owned(),
        user_id: user.to_owned(),
        state,
        ticket_valid: valid,
        at_ms: now,
    });
    if !valid {
        problems.push("sendtyping with a typing_ticket not issued for this user".to_owned());
        return Reply::json(shared, &json!({"ret": -2}));
    }
    st.typing.insert(user.to_owned(), state);
    Reply::json(shared, &json!({"ret": 0}))
}

fn get_upload_url(
    shared: &Arc<Shared>,
    bot_id: &str,
    body: &Value,
    problems: &mut Vec<String>,
) -> Reply {
    let invalid = |problems: &mut Vec<String>, why: &str| {
        problems.push(format!("getuploadurl: {why}"));
        Reply::json(shared, &json!({"ret": -2, "errmsg": "invalid arguments"}))
    };
    let Some(to_user_id) = non_empty(body, "to_user_id") else {
        problems.push("getuploadurl: no to_user_id".to_owned());
        return Reply::json(shared, &json!({"ret": -1}));
    };
    if shared.config.check_upload_recipient && !wire::is_wechat_user_id(to_user_id) {
        problems.push("getuploadurl: to_user_id is not a WeChat user id (…@im.wechat)".to_owned());
        return Reply::json(shared, &json!({"ret": -1}));
    }
    let Some(filekey) = non_empty(body, "filekey") else {
        return invalid(problems, "no filekey");
    };
    let media_type = match body.get("media_type").and_then(Value::as_u64) {
        Some(t @ 1..=4) => t,
        _ => return invalid(problems, "media_type not 1..=4"),
    };
    let (Some(rawsize), Some(filesize)) = (
        body.get("rawsize").and_then(Value::as_u64),
        body.get("filesize").and_then(Value::as_u64),
    ) else {
        return invalid(problems, "rawsize/filesize missing or not numbers");
    };
    if filesize != ilink_crypto::ciphertext_len(rawsize) {
        return invalid(
            problems,
            "filesize is not the AES-128-ECB/PKCS#7 size of rawsize",
        );
    }
    let Some(md5) = non_empty(body, "rawfilemd5").filter(|m| is_hex32(m)) else {
        return invalid(problems, "rawfilemd5 is not 32 hex digits");
    };
    let Some(key) = non_empty(body, "aeskey")
        .filter(|k| is_hex32(k))
        .and_then(|k| MediaKey::from_hex(k).ok())
    else {
        return invalid(problems, "aeskey is not 32 hex digits");
    };
    if body.get("no_need_thumb").and_then(Value::as_bool) != Some(true) {
        problems.push("getuploadurl without no_need_thumb: true".to_owned());
    }
    let mut st = shared.lock();
    if let Some(refusal) = shared.config.upload_requires_context_token {
        let token = non_empty(body, "context_token");
        if !token.is_some_and(|t| st.context_token_issued(t, bot_id, to_user_id)) {
            drop(st);
            // The live server's refusal; not a deviation from the official client (2.4.9
            // does not send the field), so it is not recorded as a problem.
            let answer = match refusal {
                UploadGrantRefusal::Ret2 => json!({"ret": -2}),
                UploadGrantRefusal::SessionTimeout => stale_token_body(),
            };
            tracing::warn!(bot = %bot_id, to = %to_user_id,
                "sim refused getuploadurl: no context_token of this chat");
            return Reply::json(shared, &answer);
        }
    }
    let param = st.rng.b64(60);
    let n = st.upload_url_calls;
    st.upload_url_calls += 1;
    let taskid = st.rng.next_u64() >> 11;
    let coin = st.rng.below(2) == 0;
    st.insert_upload_grant(
        param.clone(),
        PendingUpload {
            filekey: filekey.to_owned(),
            media_type,
            to_user_id: to_user_id.to_owned(),
            rawsize,
            filesize,
            rawfilemd5: md5.to_ascii_lowercase(),
            key,
        },
    );
    drop(st);
    let full_url = format!(
        "{}/upload?encrypted_query_param={}&filekey={}&taskid={taskid}",
        shared.cdn_base_url(),
        wire::percent_encode(&param),
        wire::percent_encode(filekey)
    );
    let mode = match shared.config.upload_url_mode {
        UploadUrlMode::Alternate if n.is_multiple_of(2) => UploadUrlMode::ParamOnly,
        UploadUrlMode::Alternate => UploadUrlMode::FullUrl,
        UploadUrlMode::Random if coin => UploadUrlMode::ParamOnly,
        UploadUrlMode::Random => UploadUrlMode::FullUrl,
        m => m,
    };
    let answer = match mode {
        UploadUrlMode::ParamOnly => json!({"upload_param": param, "thumb_upload_param": ""}),
        UploadUrlMode::FullUrl => json!({"upload_full_url": full_url}),
        _ => json!({"upload_param": param, "thumb_upload_param": "", "upload_full_url": full_url}),
    };
    Reply::json(shared, &answer)
}

async fn cdn_upload(shared: &Arc<Shared>, inc: &Incoming2) -> Reply {
    let Some(param) = inc.query("encrypted_query_param") else {
        return Reply::cdn_error(400, "missing encrypted_query_param");
    };
    let via_full_url = inc.query("taskid").is_some();
    let (mut record, expected_md5, key) = {
        let st = shared.lock();
        let Some(p) = st.pending_uploads.get(param) else {
            return Reply::cdn_error(400, "invalid encrypted_query_param");
        };
        let record = UploadRecord {
            filekey: p.filekey.clone(),
            media_type: p.media_type,
            to_user_id: p.to_user_id.clone(),
            rawsize: p.rawsize,
            filesize: p.filesize,
            received: inc.body.len() as u64,
            via_full_url,
            download_param: None,
            error: None,
        };
        (record, p.rawfilemd5.clone(), p.key.clone())
    };
    let error = if !shared.config.upload_checks {
        None
    } else if inc.query("filekey") != Some(record.filekey.as_str()) {
        Some("filekey does not match getuploadurl".to_owned())
    } else if inc.body.len() as u64 != record.filesize {
        Some(format!(
            "body is {} bytes, getuploadurl declared filesize {}",
            inc.body.len(),
            record.filesize
        ))
    } else {
        // Decrypt and hash off the lock and off the async workers: a large upload takes
        // seconds (MD5 runs at about 0.5-1 GB/s).
        let body = inc.body.clone();
        let scanned =
            tokio::task::spawn_blocking(move || crate::state::scan_plaintext(&key, &body, true))
                .await;
        match scanned {
            Err(_) => Some("the upload check failed".to_owned()),
            Ok(Err(_)) => Some("body does not decrypt with the declared aeskey".to_owned()),
            Ok(Ok((len, _))) if len != record.rawsize => Some(format!(
                "plaintext is {len} bytes, getuploadurl declared rawsize {}",
                record.rawsize
            )),
            Ok(Ok((_, md5))) if md5.as_deref() != Some(expected_md5.as_str()) => {
                Some("plaintext MD5 does not match rawfilemd5".to_owned())
            }
            Ok(Ok(_)) => None,
        }
    };
    let mut st = shared.lock();
    if let Some(e) = error {
        record.error = Some(e.clone());
        st.push_upload(record);
        return Reply::cdn_error(400, &e);
    }
    let download_param = st.rng.b64(72);
    st.insert_cdn_object(download_param.clone(), inc.body.clone());
    record.download_param = Some(download_param.clone());
    st.push_upload(record);
    Reply {
        status: 200,
        headers: vec![("x-encrypted-param", download_param)],
        body: Bytes::new(),
    }
}

fn cdn_download(shared: &Arc<Shared>, inc: &Incoming2) -> Reply {
    let Some(param) = inc.query("encrypted_query_param") else {
        return Reply::cdn_error(400, "missing encrypted_query_param");
    };
    match shared.lock().cdn.get(param) {
        Some(obj) => Reply {
            status: 200,
            headers: vec![("content-type", "application/octet-stream".to_owned())],
            body: obj.ciphertext.clone(),
        },
        None => Reply::cdn_error(404, "no such media"),
    }
}

fn get_bot_qrcode(shared: &Arc<Shared>, inc: &Incoming2) -> Reply {
    let local_tokens: Vec<String> = inc
        .json()
        .get("local_token_list")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let qrcode = shared.lock().qr_issue(&shared.config, local_tokens);
    Reply::json(
        shared,
        &json!({
            "qrcode": qrcode,
            "qrcode_img_content": format!(
                "https://liteapp.weixin.qq.com/q/7GiQu1?qrcode={qrcode}&bot_type=3"
            ),
            "ret": 0,
        }),
    )
}

fn get_qrcode_status(shared: &Arc<Shared>, inc: &Incoming2) -> Reply {
    let qrcode = inc.query("qrcode").unwrap_or("");
    let answer = shared.lock().qr_poll(
        &shared.config,
        qrcode,
        inc.query("verify_code"),
        &shared.base_url(),
        &shared.host(),
        shared.now_ms(),
    );
    Reply::json(shared, &answer)
}
