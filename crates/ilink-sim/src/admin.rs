//! The admin API over HTTP, under `/_sim/`, for other processes (the `ilink sim`
//! command, crash tests that run a bot as a child process).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hyper::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::fault::{Endpoint, Fault};
use crate::qr::QrStep;
use crate::server::{Incoming2, Reply};
use crate::state::Shared;
use crate::user::{MediaKind, ScriptedUser};
use crate::wire;

fn ok(v: Value) -> Reply {
    Reply::admin_json(200, &v)
}

fn bad(msg: impl std::fmt::Display) -> Reply {
    Reply::admin_json(400, &json!({"error": msg.to_string()}))
}

fn to_json<T: serde::Serialize>(v: &T) -> Reply {
    match serde_json::to_value(v) {
        Ok(v) => ok(v),
        Err(e) => Reply::admin_json(500, &json!({"error": e.to_string()})),
    }
}

#[derive(Deserialize)]
struct CreateBot {
    user_id: Option<String>,
}

#[derive(Deserialize)]
struct SendReq {
    bot_id: String,
    /// text | image | file | video | voice | quote
    kind: String,
    text: Option<String>,
    data_base64: Option<String>,
    file_name: Option<String>,
    playtime_ms: Option<u64>,
    quoted_message_id: Option<u64>,
    items: Option<Vec<Value>>,
}

#[derive(Deserialize)]
struct FaultReq {
    endpoint: Endpoint,
    fault: Fault,
    #[serde(default = "one")]
    times: u32,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
struct ClockReq {
    ms: u64,
}

#[derive(Deserialize)]
struct RawReq {
    bot_id: String,
    message: Value,
}

#[derive(Deserialize)]
struct ScriptReq {
    steps: Vec<QrStep>,
}

#[derive(Deserialize)]
struct ActReq {
    step: QrStep,
}

fn parse<T: for<'de> Deserialize<'de>>(inc: &Incoming2) -> Result<T, Reply> {
    serde_json::from_slice(&inc.body).map_err(|e| bad(format!("bad request body: {e}")))
}

pub(crate) async fn handle(shared: &Arc<Shared>, inc: &Incoming2) -> Reply {
    match route(shared, inc) {
        Ok(r) | Err(r) => r,
    }
}

fn route(shared: &Arc<Shared>, inc: &Incoming2) -> Result<Reply, Reply> {
    let rest = inc.path.trim_start_matches("/_sim").trim_matches('/');
    let segs: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| wire::percent_decode(s).unwrap_or_else(|| s.to_owned()))
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = &inc.method;
    let user_filter = inc.query("user");
    let now = shared.now_ms();
    Ok(match (m, segs.as_slice()) {
        (&Method::GET, [] | ["info"]) => ok(json!({
            "base_url": shared.base_url(),
            "cdn_base_url": shared.cdn_base_url(),
            "host": shared.host(),
            "now_ms": now,
        })),
        (&Method::GET, ["bots"]) => {
            let st = shared.lock();
            let bots: Vec<Value> = st
                .bots
                .values()
                .map(|b| {
                    json!({
                        "bot_id": b.account.bot_id,
                        "token": b.account.token,
                        "user_id": b.account.user_id,
                        "stale": b.stale,
                        "inbox_len": b.stream_len(),
                        "acked": b.acked,
                        "notify_started": b.notify_started,
                        "notify_stopped": b.notify_stopped,
                    })
                })
                .collect();
            ok(Value::Array(bots))
        }
        (&Method::POST, ["bots"]) => {
            let req: CreateBot = if inc.body.is_empty() {
                CreateBot { user_id: None }
            } else {
                parse(inc)?
            };
            let bot = shared
                .lock()
                .provision_bot(&shared.config, req.user_id.as_deref(), now);
            to_json(&bot)
        }
        (&Method::POST, ["bots", bot_id, "expire_token"]) => {
            if shared.lock().expire_token(bot_id) {
                ok(json!({"ok": true}))
            } else {
                Reply::admin_json(404, &json!({"error": "unknown bot"}))
            }
        }
        (&Method::POST, ["users", user_id, "send"]) => {
            let req: SendReq = parse(inc)?;
            let user = ScriptedUser {
                shared: Arc::clone(shared),
                id: (*user_id).to_owned(),
            };
            let data = match &req.data_base64 {
                Some(d) => STANDARD
                    .decode(d)
                    .map_err(|e| bad(format!("data_base64: {e}")))?,
                None => Vec::new(),
            };
            let text = req.text.as_deref().unwrap_or("");
            let bot = req.bot_id.as_str();
            let r = match req.kind.as_str() {
                "text" => user.send_text(bot, text),
                "image" => user.send_image(bot, &data),
                "file" => {
                    user.send_file(bot, req.file_name.as_deref().unwrap_or("file.bin"), &data)
                }
                "video" => user.send_video(bot, &data),
                "voice" => user.media_item(
                    bot,
                    MediaKind::Voice {
                        playtime_ms: req.playtime_ms.unwrap_or(0),
                    },
                    &data,
                    None,
                    req.text.as_deref(),
                ),
                "quote" => user.quote(bot, req.quoted_message_id.unwrap_or(0), text),
                // Audio from the browser (WAV or anything the codec reads): encoded to SILK.
                "audio" => {
                    let (silk, playtime_ms) = crate::page::encode_voice(
                        shared,
                        req.data_base64.as_deref().unwrap_or(""),
                    )?;
                    user.send_voice(bot, &silk, playtime_ms)
                }
                "items" => user.send_items(bot, req.items.clone().unwrap_or_default()),
                other => return Err(bad(format!("unknown kind {other:?}"))),
            };
            match r {
                Ok(inbound) => to_json(&inbound),
                Err(e) => Reply::admin_json(404, &json!({"error": e.to_string()})),
            }
        }
        (&Method::POST, ["inject_raw"]) => {
            let req: RawReq = parse(inc)?;
            let seq = shared.lock().push_raw(&req.bot_id, req.message);
            shared.inbox_changed.notify_waiters();
            match seq {
                Some(seq) => ok(json!({"seq": seq})),
                None => Reply::admin_json(404, &json!({"error": "unknown bot"})),
            }
        }
        (&Method::POST, ["download"]) => {
            let item: Value = parse(inc)?;
            match crate::user::download(shared, &item) {
                Ok(bytes) => ok(json!({"data_base64": STANDARD.encode(bytes)})),
                Err(e) => bad(e),
            }
        }
        (&Method::GET, ["inbound"]) => to_json(&shared.lock().inbound),
        (&Method::GET, ["delivered"]) => {
            let st = shared.lock();
            let v: Vec<_> = st
                .delivered
                .iter()
                .filter(|d| user_filter.is_none_or(|u| d.to_user_id == u))
                .collect();
            to_json(&v)
        }
        (&Method::GET, ["dropped"]) => to_json(&shared.lock().dropped),
        (&Method::GET, ["ui", "state"]) => ok(crate::page::state(shared)),
        (&Method::GET, ["ui", "media", id]) => crate::page::media(shared, id, inc),
        (&Method::GET, ["memory"]) => to_json(&shared.lock().retention_stats()),
        (&Method::GET, ["uploads"]) => to_json(&shared.lock().uploads),
        (&Method::GET, ["requests"]) => to_json(&shared.lock().requests),
        (&Method::DELETE, ["requests"]) => {
            shared.lock().requests.clear();
            ok(json!({"ok": true}))
        }
        (&Method::GET, ["typing"]) => {
            let st = shared.lock();
            let events: Vec<_> = st
                .typing_events
                .iter()
                .filter(|e| user_filter.is_none_or(|u| e.user_id == u))
                .collect();
            let state = user_filter.and_then(|u| st.typing.get(u));
            to_json(&json!({"state": state, "events": events}))
        }
        (&Method::GET, ["faults"]) => {
            let pending: Vec<Value> = shared
                .lock()
                .faults
                .pending()
                .into_iter()
                .map(|(e, f, n)| json!({"endpoint": e, "fault": f, "times": n}))
                .collect();
            ok(Value::Array(pending))
        }
        (&Method::POST, ["faults"]) => {
            let req: FaultReq = parse(inc)?;
            shared
                .lock()
                .faults
                .push(req.endpoint, req.fault, req.times);
            ok(json!({"ok": true}))
        }
        (&Method::DELETE, ["faults"]) => {
            shared.lock().faults.clear();
            ok(json!({"ok": true}))
        }
        (&Method::POST, ["clock", "advance"]) => {
            let req: ClockReq = parse(inc)?;
            shared.clock.advance_ms(req.ms);
            ok(json!({"now_ms": shared.now_ms()}))
        }
        (&Method::POST, ["qr", "script"]) => {
            let req: ScriptReq = parse(inc)?;
            shared.lock().qr_scripts.push_back(req.steps);
            ok(json!({"ok": true}))
        }
        (&Method::GET, ["qr", "sessions"]) => {
            let v: Vec<_> = shared.lock().qr_sessions.iter().map(|s| s.info()).collect();
            to_json(&v)
        }
        (&Method::POST, ["qr", "sessions", qrcode]) => {
            let req: ActReq = parse(inc)?;
            let mut st = shared.lock();
            match st.qr_sessions.iter_mut().find(|s| s.qrcode == *qrcode) {
                Some(s) => {
                    s.steps.push_back(req.step);
                    ok(json!({"ok": true}))
                }
                None => Reply::admin_json(404, &json!({"error": "unknown qrcode"})),
            }
        }
        _ => Reply::admin_json(
            404,
            &json!({"error": "no such admin route", "path": inc.path}),
        ),
    })
}
