//! getupdates response decoding (docs/protocol.md §7, §19, design rule 5): the body the bot
//! receives most, straight from the network.
//!
//! Properties: `decode_updates` (the client's tolerant decoder) and `decode` never panic; every
//! message of a decoded batch decodes on its own (a bad one becomes an error value with its
//! index, the others survive, the count holds); whatever `decode` accepts, `decode_updates`
//! accepts too, with the same envelope, cursor and messages; a decoded response without unparsed
//! entries re-encodes and decodes to the same value, and so does every decoded message.
#![no_main]

use ilink_proto::{ApiResponse, GetUpdatesResponse, WeixinMessage, decode, decode_updates};
use libfuzzer_sys::fuzz_target;

fn check(resp: GetUpdatesResponse) {
    let _ = resp.status();
    let _ = resp.next_cursor();
    let _ = resp.long_poll_timeout();

    if resp.unparsed_msgs.is_empty() {
        let again: GetUpdatesResponse =
            decode(&serde_json::to_vec(&resp).expect("a decoded response re-encodes"))
                .expect("a re-encoded response decodes");
        assert!(again == resp, "response does not round-trip");
    }

    let count = resp.message_count();
    let msgs = resp.into_messages();
    assert_eq!(msgs.len(), count);
    for (index, msg) in msgs.into_iter().enumerate() {
        match msg {
            Ok(msg) => {
                let _ = msg.body_text();
                for item in msg.items() {
                    let _ = item.media().map(|m| m.is_downloadable());
                }
                let json = serde_json::to_vec(&msg).expect("a decoded message re-encodes");
                let back: WeixinMessage =
                    serde_json::from_slice(&json).expect("a re-encoded message decodes");
                assert_eq!(back, msg, "message does not round-trip");
            }
            Err(err) => {
                assert_eq!(err.index(), index);
                let _ = err.kind();
                let _ = err.raw_bytes();
                let _ = err.to_string();
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let tolerant = decode_updates(data);
    if let Ok(strict) = decode::<GetUpdatesResponse>(data) {
        let tolerant = tolerant
            .as_ref()
            .expect("decode_updates accepts what decode accepts");
        assert_eq!(tolerant.ret, strict.ret);
        assert_eq!(tolerant.errcode, strict.errcode);
        assert_eq!(tolerant.next_cursor(), strict.next_cursor());
        assert_eq!(tolerant.message_count(), strict.message_count());
        check(strict);
    }
    if let Ok(resp) = tolerant {
        check(resp);
    }
});
