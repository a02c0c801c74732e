//! Scripted WeChat users that send messages to bots and read what bots sent them.

use std::sync::Arc;

use ilink_crypto::MediaKey;
use serde_json::{Value, json};

use crate::error::SimError;
use crate::model::{Delivered, Inbound};
use crate::state::{Shared, media_of};
use crate::wire;

/// A scripted WeChat user (`…@im.wechat`). Cheap to clone; all methods are synchronous
/// and can be called from any thread.
#[derive(Clone)]
pub struct ScriptedUser {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: String,
}

impl std::fmt::Debug for ScriptedUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedUser")
            .field("id", &self.id)
            .finish()
    }
}

/// What kind of media a scripted user sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MediaKind {
    Image,
    Voice { playtime_ms: u64 },
    File,
    Video,
}

impl ScriptedUser {
    /// The user id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn push(&self, bot: &str, items: Vec<Value>) -> Result<Inbound, SimError> {
        let now = self.shared.now_ms();
        let inbound = self
            .shared
            .lock()
            .push_inbound(bot, &self.id, items, now)
            .ok_or_else(|| SimError::UnknownBot(bot.to_owned()))?;
        self.shared.inbox_changed.notify_waiters();
        self.shared.touch();
        Ok(inbound)
    }

    fn check_bot(&self, bot: &str) -> Result<(), SimError> {
        if self.shared.lock().bots.contains_key(bot) {
            Ok(())
        } else {
            Err(SimError::UnknownBot(bot.to_owned()))
        }
    }

    /// Sends a text message; it carries a fresh `context_token`.
    ///
    /// # Errors
    /// [`SimError::UnknownBot`].
    pub fn send_text(&self, bot: impl AsRef<str>, text: &str) -> Result<Inbound, SimError> {
        self.push(
            bot.as_ref(),
            vec![json!({"type": 1, "text_item": {"text": text}})],
        )
    }

    /// Sends arbitrary items (each a `MessageItem` JSON object); the emulator adds the
    /// envelope, ids and a `context_token`.
    ///
    /// # Errors
    /// [`SimError::UnknownBot`].
    pub fn send_items(&self, bot: impl AsRef<str>, items: Vec<Value>) -> Result<Inbound, SimError> {
        self.push(bot.as_ref(), items)
    }

    pub(crate) fn media_item(
        &self,
        bot: &str,
        kind: MediaKind,
        data: &[u8],
        file_name: Option<&str>,
        transcript: Option<&str>,
    ) -> Result<Inbound, SimError> {
        self.check_bot(bot)?;
        let cdn = self.shared.cdn_base_url();
        let ct_len = ilink_crypto::ciphertext_len(data.len() as u64);
        let md5 = ilink_crypto::md5_hex(data);
        let item = {
            let mut st = self.shared.lock();
            match kind {
                MediaKind::Image => {
                    // Images: `aeskey` hex plus `media.aes_key` = base64 of the raw 16 bytes.
                    let (media, key) =
                        st.store_inbound_media(&self.shared.config, &cdn, data, false);
                    json!({"type": 2, "image_item": {
                        "media": media,
                        "aeskey": key.to_hex(),
                        "mid_size": ct_len,
                        "hd_size": ct_len,
                    }})
                }
                MediaKind::Voice { playtime_ms } => {
                    let (media, _) = st.store_inbound_media(&self.shared.config, &cdn, data, true);
                    let mut v = json!({
                        "media": media,
                        "encode_type": 6,
                        "bits_per_sample": 16,
                        "sample_rate": 24000,
                        "playtime": playtime_ms,
                    });
                    if let (Some(t), Some(obj)) = (transcript, v.as_object_mut()) {
                        obj.insert("text".into(), json!(t));
                    }
                    json!({"type": 3, "voice_item": v})
                }
                MediaKind::File => {
                    let (media, _) = st.store_inbound_media(&self.shared.config, &cdn, data, true);
                    json!({"type": 4, "file_item": {
                        "media": media,
                        "file_name": file_name.unwrap_or("file.bin"),
                        "md5": md5,
                        "len": data.len().to_string(),
                    }})
                }
                MediaKind::Video => {
                    let (media, _) = st.store_inbound_media(&self.shared.config, &cdn, data, true);
                    json!({"type": 5, "video_item": {
                        "media": media,
                        "video_size": ct_len,
                        "video_md5": md5,
                    }})
                }
            }
        };
        self.push(bot, vec![item])
    }

    /// Sends an image: encrypted on the emulated CDN, with `image_item.aeskey` (hex) and
    /// `media.aes_key` (base64 of the raw key), as the live server does.
    ///
    /// # Errors
    /// [`SimError::UnknownBot`].
    pub fn send_image(&self, bot: impl AsRef<str>, data: &[u8]) -> Result<Inbound, SimError> {
        self.media_item(bot.as_ref(), MediaKind::Image, data, None, None)
    }

    /// Sends a file with `file_name`; `media.aes_key` is base64 of the hex key.
    ///
    /// # Errors
    /// [`SimError::UnknownBot`].
    pub fn send_file(
        &self,
        bot: impl AsRef<str>,
        file_name: &str,
        data: &[u8],
    ) -> Result<Inbound, SimError> {
        self.media_item(bot.as_ref(), MediaKind::File, data, Some(file_name), None)
    }

    /// Sends a video; `media.aes_key` is base64 of the hex key.
    ///
    /// # Errors
    /// [`SimError::UnknownBot`].
    pub fn send_video(&self, bot: impl AsRef<str>, data: &[u8]) -> Result<Inbound, SimError> {
        self.media_item(bot.as_ref(), MediaKind::Video, data, None, None)
    }

    /// Sends a voice message: `silk` should be SILK bytes (the emulator does not decode
    /// them), `encode_type` 6, 24 kHz, `playtime` in ms, no transcript.
    ///
    /// # Errors
    /// [`SimError::UnknownBot`].
    pub fn send_voice(
        &self,
        bot: impl AsRef<str>,
        silk: &[u8],
        playtime_ms: u64,
    ) -> Result<Inbound, SimError> {
        self.media_item(
            bot.as_ref(),
            MediaKind::Voice { playtime_ms },
            silk,
            None,
            None,
        )
    }

    /// Sends a voice message that carries the server's transcript in `voice_item.text`.
    ///
    /// # Errors
    /// [`SimError::UnknownBot`].
    pub fn send_voice_with_text(
        &self,
        bot: impl AsRef<str>,
        silk: &[u8],
        playtime_ms: u64,
        transcript: &str,
    ) -> Result<Inbound, SimError> {
        self.media_item(
            bot.as_ref(),
            MediaKind::Voice { playtime_ms },
            silk,
            None,
            Some(transcript),
        )
    }

    /// Sends a text that quotes an earlier message (`ref_msg`): a message the bot
    /// delivered to this user, or one the user sent, found by `message_id`. Unknown ids
    /// produce a quote with only the id, as newer WeChat clients send.
    ///
    /// # Errors
    /// [`SimError::UnknownBot`].
    pub fn quote(
        &self,
        bot: impl AsRef<str>,
        quoted_message_id: u64,
        text: &str,
    ) -> Result<Inbound, SimError> {
        let quoted_item = {
            let st = self.shared.lock();
            st.delivered
                .iter()
                .find(|d| d.message_id == quoted_message_id)
                .map(|d| d.item.clone())
                .or_else(|| {
                    st.inbound
                        .iter()
                        .find(|i| i.message_id == quoted_message_id)
                        .and_then(|i| i.message.get("item_list")?.get(0).cloned())
                })
        };
        let title = quoted_item
            .as_ref()
            .and_then(|i| i.get("text_item")?.get("text")?.as_str().map(str::to_owned));
        let mut message_item = json!({"msg_id": quoted_message_id});
        if let (Some(item), Some(obj)) = (&quoted_item, message_item.as_object_mut()) {
            if let Some(t) = item.get("type") {
                obj.insert("type".into(), t.clone());
            }
            if let Some(t) = item.get("text_item") {
                obj.insert("text_item".into(), t.clone());
            }
        }
        let mut ref_msg = json!({
            "svr_id": quoted_message_id.to_string(),
            "message_item": message_item,
        });
        if let (Some(t), Some(obj)) = (title, ref_msg.as_object_mut()) {
            obj.insert("title".into(), json!(t));
        }
        self.push(
            bot.as_ref(),
            vec![json!({"type": 1, "text_item": {"text": text}, "ref_msg": ref_msg})],
        )
    }

    /// Messages bots delivered to this user, oldest first.
    pub fn delivered(&self) -> Vec<Delivered> {
        self.shared
            .lock()
            .delivered
            .iter()
            .filter(|d| d.to_user_id == self.id)
            .cloned()
            .collect()
    }

    /// Fetches the media of `item` (a `MessageItem` JSON object, as in
    /// [`Delivered::item`] or an inbound message) from the emulated CDN and decrypts it
    /// with the key the item carries.
    ///
    /// # Errors
    /// [`SimError::NoMedia`], [`SimError::MediaNotFound`], [`SimError::MediaKey`] or
    /// [`SimError::Undecryptable`].
    pub fn download(&self, item: &Value) -> Result<Vec<u8>, SimError> {
        download(&self.shared, item)
    }
}

pub(crate) fn download(shared: &Shared, item: &Value) -> Result<Vec<u8>, SimError> {
    let media = media_of(item).ok_or(SimError::NoMedia)?;
    let param = match media.get("encrypt_query_param").and_then(Value::as_str) {
        Some(p) => p.to_owned(),
        None => media
            .get("full_url")
            .and_then(Value::as_str)
            .and_then(|u| u.split_once('?'))
            .and_then(|(_, q)| {
                wire::query_get(&wire::parse_query(q), "encrypted_query_param").map(str::to_owned)
            })
            .ok_or(SimError::MediaNotFound)?,
    };
    let aes_key = media.get("aes_key").and_then(Value::as_str);
    let key = match item.get("image_item") {
        Some(img) => MediaKey::from_image_item(img.get("aeskey").and_then(Value::as_str), aes_key)
            .map_err(|e| SimError::MediaKey(e.to_string()))?
            .ok_or_else(|| SimError::MediaKey("image has no key".to_owned()))?,
        None => MediaKey::from_cdn_aes_key(aes_key.unwrap_or(""))
            .map_err(|e| SimError::MediaKey(e.to_string()))?,
    };
    let st = shared.lock();
    let obj = st.cdn.get(&param).ok_or(SimError::MediaNotFound)?;
    ilink_crypto::decrypt(&key, &obj.ciphertext).map_err(|_| SimError::Undecryptable)
}
