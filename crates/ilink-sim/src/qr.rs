//! The QR login state machine with scripted outcomes.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// One scripted step of a QR login, as the phone would act. Each `get_qrcode_status`
/// poll consumes one step; when the script runs out the last non-final status repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum QrStep {
    /// Nobody scanned yet: `wait`.
    Wait,
    /// The phone scanned the code: `scaned`.
    Scan,
    /// The phone shows a number the user must type: `need_verifycode` until a poll
    /// carries `verify_code=<code>` (then `scaned`). Wrong codes answer
    /// `need_verifycode` again; too many answer `verify_code_blocked`.
    NeedVerifyCode {
        /// The digits the user must type.
        code: String,
    },
    /// Too many wrong codes: `verify_code_blocked` (final).
    VerifyCodeBlocked,
    /// The code expired: `expired` (final).
    Expire,
    /// IDC redirect: `scaned_but_redirect` with `redirect_host` = this emulator's
    /// `127.0.0.1:PORT`. (The official client then polls `https://<redirect_host>`;
    /// a client talking to the emulator must use `http://`.)
    Redirect,
    /// This bot is already bound to this client: `binded_redirect` (final).
    BindedRedirect,
    /// The user confirmed: `confirmed` with a fresh `bot_token` and `ilink_bot_id`,
    /// `baseurl` = the emulator's base URL and `ilink_user_id` = `user_id` (final). The
    /// bot account is provisioned; with the one-bot-per-user rule, older bots of this
    /// user go stale. If the `local_token_list` sent with `get_bot_qrcode` holds a live
    /// token of a bot already bound to `user_id`, the answer is `binded_redirect` instead
    /// and nothing is provisioned.
    Confirm {
        /// The WeChat user who scanned, `…@im.wechat`.
        user_id: String,
    },
}

/// A QR code issued by `get_bot_qrcode`, as admin reads show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QrSessionInfo {
    /// The `qrcode` key.
    pub qrcode: String,
    /// The last status answered (`"wait"` before the first poll).
    pub status: String,
    /// Steps not consumed yet.
    pub remaining: Vec<QrStep>,
    /// The bot a `confirmed` status provisioned.
    pub bot_id: Option<String>,
    /// Status polls answered.
    pub polls: u32,
}

pub(crate) struct QrSession {
    pub(crate) qrcode: String,
    pub(crate) steps: VecDeque<QrStep>,
    /// The status repeated when the script runs out.
    pub(crate) sticky: &'static str,
    pub(crate) last: String,
    pub(crate) pending_code: Option<String>,
    pub(crate) wrong_codes: u32,
    pub(crate) final_answer: Option<serde_json::Value>,
    pub(crate) bot_id: Option<String>,
    pub(crate) polls: u32,
    /// `local_token_list` sent with `get_bot_qrcode`.
    pub(crate) local_tokens: Vec<String>,
}

impl QrSession {
    pub(crate) fn new(qrcode: String, steps: Vec<QrStep>) -> Self {
        Self {
            qrcode,
            steps: steps.into(),
            sticky: "wait",
            last: "wait".to_owned(),
            pending_code: None,
            wrong_codes: 0,
            final_answer: None,
            bot_id: None,
            polls: 0,
            local_tokens: Vec::new(),
        }
    }

    pub(crate) fn info(&self) -> QrSessionInfo {
        QrSessionInfo {
            qrcode: self.qrcode.clone(),
            status: self.last.clone(),
            remaining: self.steps.iter().cloned().collect(),
            bot_id: self.bot_id.clone(),
            polls: self.polls,
        }
    }
}

impl crate::state::State {
    /// Issues a QR code with the next queued script (or the default one).
    pub(crate) fn qr_issue(
        &mut self,
        config: &crate::SimConfig,
        local_tokens: Vec<String>,
    ) -> String {
        let qrcode = self.rng.hex(16);
        let steps = self
            .qr_scripts
            .pop_front()
            .unwrap_or_else(|| config.default_qr_script.clone());
        let mut session = QrSession::new(qrcode.clone(), steps);
        session.local_tokens = local_tokens;
        let cap = config.retention.qr_sessions.count.max(1);
        while self.qr_sessions.len() >= cap {
            self.qr_sessions.remove(0);
            self.qr_evicted += 1;
        }
        self.qr_sessions.push(session);
        qrcode
    }

    /// Answers one `get_qrcode_status` poll.
    pub(crate) fn qr_poll(
        &mut self,
        config: &crate::SimConfig,
        qrcode: &str,
        verify_code: Option<&str>,
        base_url: &str,
        host: &str,
        now: u64,
    ) -> serde_json::Value {
        use serde_json::json;
        let Some(idx) = self.qr_sessions.iter().position(|s| s.qrcode == qrcode) else {
            return json!({"status": "expired"});
        };
        // Work on the session out of the vector so that provisioning can borrow `self`.
        let mut session = self.qr_sessions.remove(idx);
        session.polls += 1;
        let answer = self.qr_step(config, &mut session, verify_code, base_url, host, now);
        if let Some(status) = answer.get("status").and_then(serde_json::Value::as_str) {
            session.last = status.to_owned();
        }
        self.qr_sessions.insert(idx, session);
        answer
    }

    fn qr_step(
        &mut self,
        config: &crate::SimConfig,
        s: &mut QrSession,
        verify_code: Option<&str>,
        base_url: &str,
        host: &str,
        now: u64,
    ) -> serde_json::Value {
        use serde_json::json;
        if let Some(done) = &s.final_answer {
            return done.clone();
        }
        if let Some(code) = s.pending_code.clone() {
            match verify_code {
                Some(given) if given == code => {
                    s.pending_code = None;
                    s.sticky = "scaned";
                    return json!({"status": "scaned"});
                }
                Some(_) => {
                    s.wrong_codes += 1;
                    if s.wrong_codes >= config.qr_max_verify_attempts {
                        let a = json!({"status": "verify_code_blocked"});
                        s.final_answer = Some(a.clone());
                        return a;
                    }
                    return json!({"status": "need_verifycode"});
                }
                None => return json!({"status": "need_verifycode"}),
            }
        }
        let Some(step) = s.steps.pop_front() else {
            return json!({"status": s.sticky});
        };
        match step {
            QrStep::Wait => {
                s.sticky = "wait";
                json!({"status": "wait"})
            }
            QrStep::Scan => {
                s.sticky = "scaned";
                json!({"status": "scaned"})
            }
            QrStep::NeedVerifyCode { code } => {
                s.pending_code = Some(code);
                s.wrong_codes = 0;
                json!({"status": "need_verifycode"})
            }
            QrStep::VerifyCodeBlocked => {
                let a = json!({"status": "verify_code_blocked"});
                s.final_answer = Some(a.clone());
                a
            }
            QrStep::Expire => {
                let a = json!({"status": "expired"});
                s.final_answer = Some(a.clone());
                a
            }
            QrStep::Redirect => {
                s.sticky = "scaned";
                json!({"status": "scaned_but_redirect", "redirect_host": host})
            }
            QrStep::BindedRedirect => {
                let a = json!({"status": "binded_redirect"});
                s.final_answer = Some(a.clone());
                a
            }
            QrStep::Confirm { user_id } => {
                // The client already holds a live token of a bot bound to this user
                // (it sent it in local_token_list): the server answers binded_redirect.
                let already = s.local_tokens.iter().any(|t| {
                    self.authenticate(config, Some(t), now)
                        .ok()
                        .and_then(|b| self.bots.get(&b))
                        .is_some_and(|b| b.account.user_id.as_deref() == Some(user_id.as_str()))
                });
                if already {
                    let a = json!({"status": "binded_redirect"});
                    s.final_answer = Some(a.clone());
                    return a;
                }
                let bot = self.provision_bot(config, Some(&user_id), now);
                s.bot_id = Some(bot.bot_id.clone());
                let a = json!({
                    "status": "confirmed",
                    "bot_token": bot.token,
                    "ilink_bot_id": bot.bot_id,
                    "baseurl": base_url.trim_end_matches('/'),
                    "ilink_user_id": user_id,
                });
                s.final_answer = Some(a.clone());
                a
            }
        }
    }
}
