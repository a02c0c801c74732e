//! Wire enums. Every one is `#[non_exhaustive]` and keeps values it does not know in an
//! `Unknown(raw)` variant that serializes back unchanged.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Defines a wire enum carried as a JSON integer.
macro_rules! int_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[non_exhaustive]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this crate does not know; serialized back unchanged.
            Unknown(i64),
        }

        impl $name {
            /// The enum for a raw wire value; unknown values become `Unknown(raw)`.
            pub const fn from_raw(raw: i64) -> Self {
                match raw {
                    $( $value => Self::$variant, )+
                    other => Self::Unknown(other),
                }
            }

            /// The raw wire value.
            pub const fn raw(self) -> i64 {
                match self {
                    $( Self::$variant => $value, )+
                    Self::Unknown(raw) => raw,
                }
            }

            /// Whether this is a value the crate knows (not `Unknown`). An `Unknown`
            /// holding a known value (built by hand) also counts as known.
            pub const fn is_known(self) -> bool {
                !matches!(Self::from_raw(self.raw()), Self::Unknown(_))
            }
        }

        impl From<i64> for $name {
            fn from(raw: i64) -> Self {
                Self::from_raw(raw)
            }
        }

        impl From<$name> for i64 {
            fn from(v: $name) -> i64 {
                v.raw()
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_i64(self.raw())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_i64(IntVisitor(stringify!($name))).map(Self::from_raw)
            }
        }
    };
}

/// Accepts any JSON integer that fits an `i64`.
struct IntVisitor(&'static str);

impl Visitor<'_> for IntVisitor {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an integer ({})", self.0)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v)
            .map_err(|_| E::custom(format_args!("{} value {v} is out of range", self.0)))
    }
}

int_enum! {
    /// `message_type` of a [`WeixinMessage`](crate::WeixinMessage) (§8.1).
    #[derive(Default)]
    pub enum MessageType {
        /// `0`, NONE.
        #[default]
        None = 0,
        /// `1`, a message from a WeChat user (inbound).
        User = 1,
        /// `2`, a message from the bot (every outbound message).
        Bot = 2,
    }
}

int_enum! {
    /// `message_state` of a [`WeixinMessage`](crate::WeixinMessage) (§8.1).
    #[derive(Default)]
    pub enum MessageState {
        /// `0`, NEW.
        #[default]
        New = 0,
        /// `1`, GENERATING.
        Generating = 1,
        /// `2`, FINISH: what the official client always sends.
        Finish = 2,
    }
}

int_enum! {
    /// `type` of a [`MessageItem`](crate::MessageItem) (§8.1). Quoted items were seen
    /// with types 0 and 8, which no version names (§19).
    #[derive(Default)]
    pub enum ItemType {
        /// `0`, NONE.
        #[default]
        None = 0,
        /// `1`, text (`text_item`).
        Text = 1,
        /// `2`, image (`image_item`).
        Image = 2,
        /// `3`, voice (`voice_item`).
        Voice = 3,
        /// `4`, file (`file_item`).
        File = 4,
        /// `5`, video (`video_item`).
        Video = 5,
        /// `11`, tool call started (`tool_call_start_item`, 2.4.4+).
        ToolCallStart = 11,
        /// `12`, tool call finished (`tool_call_result_item`, 2.4.4+).
        ToolCallResult = 12,
    }
}

int_enum! {
    /// `media_type` of a getuploadurl request (§8.1). These differ from [`ItemType`].
    pub enum UploadMediaType {
        /// `1`, image.
        Image = 1,
        /// `2`, video.
        Video = 2,
        /// `3`, file (the official client sends audio as a file).
        File = 3,
        /// `4`, voice: defined, never used by the official client.
        Voice = 4,
    }
}

int_enum! {
    /// `status` of a sendtyping request (§8.1).
    pub enum TypingStatus {
        /// `1`, show the typing indicator.
        Typing = 1,
        /// `2`, cancel it.
        Cancel = 2,
    }
}

int_enum! {
    /// `voice_item.encode_type` (§8.3). When absent, assume SILK at 24 kHz (§19).
    pub enum VoiceEncodeType {
        /// `1`, PCM.
        Pcm = 1,
        /// `2`, ADPCM.
        Adpcm = 2,
        /// `3`, "feature".
        Feature = 3,
        /// `4`, Speex.
        Speex = 4,
        /// `5`, AMR.
        Amr = 5,
        /// `6`, SILK: what WeChat voice messages use.
        Silk = 6,
        /// `7`, MP3.
        Mp3 = 7,
        /// `8`, Ogg Speex.
        OggSpeex = 8,
    }
}

/// `status` of a get_qrcode_status response, a JSON string (§6.2).
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum QrStatus {
    /// `"wait"`: not scanned yet; keep polling.
    #[default]
    Wait,
    /// `"scaned"` (sic): scanned, not yet confirmed.
    Scaned,
    /// `"need_verifycode"`: ask the user for the digits shown in WeChat, then poll with
    /// `verify_code` at once.
    NeedVerifyCode,
    /// `"verify_code_blocked"`: too many wrong codes; refresh the QR code.
    VerifyCodeBlocked,
    /// `"expired"`: refresh the QR code.
    Expired,
    /// `"scaned_but_redirect"`: poll `https://<redirect_host>` from now on.
    ScanedButRedirect,
    /// `"binded_redirect"`: this bot is already bound here; no new credentials.
    BindedRedirect,
    /// `"confirmed"`: logged in; `bot_token` and `ilink_bot_id` come with it.
    Confirmed,
    /// A status this crate does not know; serialized back unchanged.
    Unknown(String),
}

impl QrStatus {
    /// The status for a wire string; unknown strings become `Unknown`.
    pub fn from_wire(s: &str) -> Self {
        match s {
            "wait" => Self::Wait,
            "scaned" => Self::Scaned,
            "need_verifycode" => Self::NeedVerifyCode,
            "verify_code_blocked" => Self::VerifyCodeBlocked,
            "expired" => Self::Expired,
            "scaned_but_redirect" => Self::ScanedButRedirect,
            "binded_redirect" => Self::BindedRedirect,
            "confirmed" => Self::Confirmed,
            other => Self::Unknown(other.to_owned()),
        }
    }

    /// The exact wire spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Wait => "wait",
            Self::Scaned => "scaned",
            Self::NeedVerifyCode => "need_verifycode",
            Self::VerifyCodeBlocked => "verify_code_blocked",
            Self::Expired => "expired",
            Self::ScanedButRedirect => "scaned_but_redirect",
            Self::BindedRedirect => "binded_redirect",
            Self::Confirmed => "confirmed",
            Self::Unknown(s) => s,
        }
    }
}

impl fmt::Display for QrStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for QrStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for QrStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|s| Self::from_wire(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(ItemType::from_raw(11), ItemType::ToolCallStart);
        assert_eq!(ItemType::ToolCallResult.raw(), 12);
        assert_eq!(UploadMediaType::File.raw(), 3);
        assert_eq!(VoiceEncodeType::from_raw(6), VoiceEncodeType::Silk);
        assert_eq!(TypingStatus::Cancel.raw(), 2);
        assert_eq!(MessageType::Bot.raw(), 2);
        assert_eq!(MessageState::Finish.raw(), 2);
        assert!(ItemType::Unknown(1).is_known());
        assert!(!ItemType::Unknown(8).is_known());
    }

    #[test]
    fn unknown_values_round_trip() {
        for raw in ["8", "-3", "9223372036854775807", "0"] {
            let t: ItemType = serde_json::from_str(raw).unwrap();
            assert_eq!(serde_json::to_string(&t).unwrap(), raw);
        }
        assert_eq!(
            serde_json::from_str::<ItemType>("8").unwrap(),
            ItemType::Unknown(8)
        );
        for bad in ["18446744073709551615", "1.5", "\"1\"", "null"] {
            assert!(serde_json::from_str::<ItemType>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn qr_status() {
        for s in [
            "wait",
            "scaned",
            "need_verifycode",
            "verify_code_blocked",
            "expired",
            "scaned_but_redirect",
            "binded_redirect",
            "confirmed",
            "something_new",
        ] {
            let json = format!("\"{s}\"");
            let st: QrStatus = serde_json::from_str(&json).unwrap();
            assert_eq!(st.as_str(), s);
            assert_eq!(serde_json::to_string(&st).unwrap(), json);
        }
        assert_eq!(QrStatus::from_wire("confirmed"), QrStatus::Confirmed);
        assert_eq!(QrStatus::from_wire("x"), QrStatus::Unknown("x".to_owned()));
    }
}
