//! Decoding of every other wire body: the responses a bot receives (sendmessage,
//! getuploadurl, getconfig, sendtyping, notify*, both QR endpoints, the bare envelope) and
//! the requests the emulator receives from untrusted clients.
//!
//! Input: one selector byte, then the JSON body. Properties: no panic; whatever decodes
//! re-encodes and decodes to the same value; envelope status checks never panic.
#![no_main]

use ilink_proto::{
    ApiResponse, Endpoint, Envelope, GetBotQrCodeRequest, GetBotQrCodeResponse, GetConfigRequest,
    GetConfigResponse, GetUpdatesRequest, GetUploadUrlRequest, GetUploadUrlResponse,
    NotifyRequest, NotifyResponse, QrCodeStatusResponse, QrStatus, SendMessageRequest,
    SendMessageResponse, SendTypingRequest, SendTypingResponse, decode,
};
use libfuzzer_sys::fuzz_target;
use serde::{Serialize, de::DeserializeOwned};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(body: &[u8]) -> Option<T> {
    let value: T = decode(body).ok()?;
    let json = serde_json::to_vec(&value).expect("a decoded body re-encodes");
    let back: T = decode(&json).expect("a re-encoded body decodes");
    assert_eq!(back, value, "body does not round-trip");
    Some(value)
}

fn response<T>(body: &[u8])
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug + ApiResponse,
{
    if let Some(resp) = round_trip::<T>(body) {
        let envelope = resp.envelope();
        let _ = resp.status();
        for endpoint in [Endpoint::GetUpdates, Endpoint::SendMessage, Endpoint::GetConfig] {
            let _ = endpoint.official_status(&envelope);
        }
        if let Err(err) = envelope.status() {
            let _ = (err.code(), err.errmsg(), err.is_stale_token(), err.throttle_reason());
            let _ = err.to_string();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 16 {
        0 => response::<SendMessageResponse>(body),
        1 => {
            response::<GetUploadUrlResponse>(body);
            if let Ok(r) = decode::<GetUploadUrlResponse>(body) {
                let _ = (r.full_url(), r.param(), r.has_upload_target());
            }
        }
        2 => response::<GetConfigResponse>(body),
        3 => response::<SendTypingResponse>(body),
        4 => response::<NotifyResponse>(body),
        5 => response::<GetBotQrCodeResponse>(body),
        6 => response::<QrCodeStatusResponse>(body),
        7 => {
            if let Some(env) = round_trip::<Envelope>(body) {
                let _ = (env.code(), env.status(), env.status_requiring_ret(), env.status_ret_only());
            }
        }
        8 => drop(round_trip::<GetUpdatesRequest>(body)),
        9 => drop(round_trip::<SendMessageRequest>(body)),
        10 => drop(round_trip::<GetUploadUrlRequest>(body)),
        11 => drop(round_trip::<GetConfigRequest>(body)),
        12 => drop(round_trip::<SendTypingRequest>(body)),
        13 => drop(round_trip::<NotifyRequest>(body)),
        14 => drop(round_trip::<GetBotQrCodeRequest>(body)),
        _ => {
            let text = String::from_utf8_lossy(body);
            if let Some(endpoint) = Endpoint::from_path(&text) {
                assert_eq!(Endpoint::from_path(endpoint.path()), Some(endpoint));
            }
            let status = QrStatus::from_wire(&text);
            assert_eq!(QrStatus::from_wire(status.as_str()), status);
        }
    }
});
