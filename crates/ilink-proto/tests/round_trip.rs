//! serde round trips for every wire type, fully populated and empty.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Debug;

use ilink_proto::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn extra(k: &str) -> Extra {
    let mut m = Extra::new();
    m.insert(k.to_owned(), json!({"nested": [1, "two", null, true]}));
    m
}

/// Round-trips through text and through `Value`; checks equality both ways.
fn rt<T: Serialize + DeserializeOwned + PartialEq + Debug>(v: &T) -> Value {
    let text = serde_json::to_string(v).unwrap();
    let back: T = decode(text.as_bytes()).unwrap();
    assert_eq!(&back, v, "{text}");
    let value = serde_json::to_value(v).unwrap();
    let back2: T = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(&back2, v);
    assert_eq!(serde_json::to_value(&back2).unwrap(), value);
    assert!(
        !text.contains("null") || text.contains("[1,\"two\",null,true]"),
        "no nulls: {text}"
    );
    value
}

fn media(tag: &str) -> CdnMedia {
    CdnMedia {
        encrypt_query_param: Some(format!("EQP-{tag}")),
        aes_key: Some(Secret::from("MDAxMTIyMzM0NDU1NjY3Nzg4OTlhYWJiY2NkZGVlZmY=")),
        encrypt_type: Some(1),
        full_url: Some(format!("https://cdn.example/{tag}")),
        extra: extra("x_media"),
    }
}

fn full_item() -> MessageItem {
    MessageItem {
        item_type: ItemType::Unknown(99),
        type_absent: false,
        create_time_ms: Some(1),
        update_time_ms: Some(2),
        is_completed: Some(true),
        msg_id: Some(WireId::from("v1:1")),
        ref_msg: Some(RefMessage {
            message_item: Some(Box::new(MessageItem {
                msg_id: Some(WireId::from_u64(u64::MAX)),
                type_absent: true,
                ..Default::default()
            })),
            title: Some("t".into()),
            svr_id: Some(WireId::from_u64(9_007_199_254_740_993)),
            partial_text: Some(PartialText {
                start: Some("a".into()),
                end: Some("b".into()),
                startindex: Some(0),
                endindex: Some(-1),
                quotemd5: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
                extra: extra("x_pt"),
            }),
            extra: extra("x_ref"),
        }),
        text_item: Some(TextItem {
            text: Some("文本".into()),
            extra: extra("x_text"),
        }),
        image_item: Some(ImageItem {
            media: Some(media("img")),
            thumb_media: Some(media("thumb")),
            aeskey: Some(Secret::from("00112233445566778899aabbccddeeff")),
            url: Some("u".into()),
            mid_size: Some(1),
            thumb_size: Some(2),
            thumb_height: Some(3),
            thumb_width: Some(4),
            hd_size: Some(5),
            extra: extra("x_img"),
        }),
        voice_item: Some(VoiceItem {
            media: Some(media("voice")),
            encode_type: Some(VoiceEncodeType::Unknown(42)),
            bits_per_sample: Some(16),
            sample_rate: Some(24000),
            playtime: Some(4210),
            text: Some("transcript".into()),
            extra: extra("x_voice"),
        }),
        file_item: Some(FileItem {
            media: Some(media("file")),
            file_name: Some("a.pdf".into()),
            md5: Some("m".into()),
            len: Some("542188".into()),
            extra: extra("x_file"),
        }),
        video_item: Some(VideoItem {
            media: Some(media("video")),
            video_size: Some(1),
            play_length: Some(2),
            video_md5: Some("m".into()),
            thumb_media: Some(media("vthumb")),
            thumb_size: Some(3),
            thumb_height: Some(4),
            thumb_width: Some(5),
            extra: extra("x_video"),
        }),
        tool_call_start_item: Some(ToolCallStartItem {
            tool_name: Some("n".into()),
            tool_call_id: Some("i".into()),
            extra: extra("x_tcs"),
        }),
        tool_call_result_item: Some(ToolCallResultItem {
            tool_name: Some("n".into()),
            tool_call_id: Some("i".into()),
            status: Some("blocked".into()),
            extra: extra("x_tcr"),
        }),
        extra: extra("button_item_list"),
    }
}

fn full_message() -> WeixinMessage {
    WeixinMessage {
        from_user_id: Some("o9@im.wechat".into()),
        to_user_id: Some("b@im.bot".into()),
        client_id: Some("c".into()),
        message_type: Some(MessageType::Unknown(-7)),
        message_state: Some(MessageState::Generating),
        item_list: Some(vec![full_item(), MessageItem::text("x")]),
        context_token: Some(Secret::from("CTX")),
        run_id: Some("r".into()),
        seq: Some(u64::MAX),
        message_id: Some(WireId::from_u64(7_448_678_501_208_393_123)),
        create_time_ms: Some(1_774_245_556_513),
        update_time_ms: Some(0),
        delete_time_ms: Some(0),
        session_id: Some(String::new()),
        group_id: Some(String::new()),
        extra: extra("root_id"),
    }
}

fn base() -> BaseInfo {
    BaseInfo {
        extra: extra("x_base"),
        ..BaseInfo::for_version(&CompatVersion::DEFAULT, Some("A/1"))
    }
}

#[test]
fn message_types() {
    let v = rt(&full_message());
    assert_eq!(v["message_id"], json!(7_448_678_501_208_393_123u64));
    assert_eq!(v["item_list"][0]["type"], 99);
    assert!(
        v["item_list"][0]["ref_msg"]["message_item"]
            .get("type")
            .is_none()
    );
    rt(&WeixinMessage::default());
    rt(&full_item());
    rt(&MessageItem::default());
    rt(&media("m"));
    rt(&CdnMedia::default());
    rt(full_item().ref_msg.as_ref().unwrap());
    rt(&RefMessage::default());
    rt(&PartialText::default());
    rt(&TextItem::default());
    rt(&ImageItem::default());
    rt(&VoiceItem::default());
    rt(&FileItem::default());
    rt(&VideoItem::default());
    rt(&ToolCallStartItem::default());
    rt(&ToolCallResultItem::default());
    assert_eq!(rt(&WeixinMessage::default()), json!({}));
    assert_eq!(rt(&MessageItem::default()), json!({"type": 0}));
}

#[test]
fn request_types() {
    rt(&GetUpdatesRequest {
        extra: extra("sync_buf"),
        ..GetUpdatesRequest::new(Secret::from("B"), base())
    });
    rt(&SendMessageRequest::new(full_message(), base()));
    rt(&GetUploadUrlRequest {
        thumb_rawsize: Some(1),
        thumb_rawfilemd5: Some("m".into()),
        thumb_filesize: Some(16),
        extra: extra("x"),
        ..GetUploadUrlRequest::new(
            "k",
            UploadMediaType::Voice,
            "u",
            100,
            "m",
            Secret::from("a"),
            base(),
        )
    });
    rt(&GetConfigRequest::new("u", Some(Secret::from("c")), base()));
    rt(&SendTypingRequest::new(
        "u",
        Secret::from("t"),
        TypingStatus::Unknown(3),
        base(),
    ));
    rt(&NotifyRequest::new(base()));
    rt(&GetBotQrCodeRequest::new([
        Secret::from("t1"),
        Secret::from("t2"),
    ]));
    rt(&base());
    for v in [
        json!(GetUpdatesRequest::default()),
        json!(SendMessageRequest::default()),
        json!(GetUploadUrlRequest::default()),
        json!(GetConfigRequest::default()),
        json!(SendTypingRequest::default()),
        json!(NotifyRequest::default()),
        json!(BaseInfo::default()),
    ] {
        assert_eq!(v, json!({}));
    }
}

#[test]
fn response_types() {
    let env = |r: i64| (Some(r), Some(-r), Some(format!("m{r}")));
    let (ret, errcode, errmsg) = env(-2);
    let mut updates =
        GetUpdatesResponse::with_messages([&full_message()], Secret::from("C")).unwrap();
    updates.errcode = errcode;
    updates.errmsg = errmsg.clone();
    updates.longpolling_timeout_ms = Some(35000);
    updates.sync_buf = Some(Secret::from("S"));
    updates.extra = extra("x");
    rt(&updates);
    assert_eq!(updates.messages()[0].as_ref().unwrap(), &full_message());
    rt(&SendMessageResponse {
        ret,
        errcode,
        errmsg: errmsg.clone(),
        message_id: Some(WireId::from("123")),
        extra: extra("x"),
    });
    rt(&GetUploadUrlResponse {
        ret,
        errcode,
        errmsg: errmsg.clone(),
        upload_param: Some("p".into()),
        thumb_upload_param: Some(String::new()),
        upload_full_url: Some("https://x/upload?taskid=1".into()),
        extra: extra("x"),
    });
    rt(&GetConfigResponse {
        ret,
        errcode,
        errmsg: errmsg.clone(),
        typing_ticket: Some(Secret::from("T")),
        extra: extra("x"),
    });
    rt(&SendTypingResponse {
        ret,
        errcode,
        errmsg: errmsg.clone(),
        extra: extra("x"),
    });
    rt(&NotifyResponse {
        ret,
        errcode,
        errmsg: errmsg.clone(),
        extra: extra("x"),
    });
    rt(&GetBotQrCodeResponse {
        ret,
        errcode,
        errmsg: errmsg.clone(),
        qrcode: Some("q".into()),
        qrcode_img_content: Some("https://liteapp.weixin.qq.com/q/x".into()),
        extra: extra("x"),
    });
    for status in [
        QrStatus::Wait,
        QrStatus::Scaned,
        QrStatus::NeedVerifyCode,
        QrStatus::VerifyCodeBlocked,
        QrStatus::Expired,
        QrStatus::ScanedButRedirect,
        QrStatus::BindedRedirect,
        QrStatus::Confirmed,
        QrStatus::Unknown("new_state".into()),
    ] {
        rt(&QrCodeStatusResponse {
            ret,
            errcode,
            errmsg: errmsg.clone(),
            status,
            bot_token: Some(Secret::from("tok")),
            ilink_bot_id: Some("b@im.bot".into()),
            baseurl: Some("https://ilinkai.weixin.qq.com".into()),
            ilink_user_id: Some("u@im.wechat".into()),
            redirect_host: Some("sh.ilinkai.weixin.qq.com".into()),
            extra: extra("x"),
        });
    }
    rt(&Envelope {
        ret,
        errcode,
        errmsg,
    });
    for v in [
        json!(GetUpdatesResponse::default()),
        json!(SendMessageResponse::default()),
        json!(GetUploadUrlResponse::default()),
        json!(GetConfigResponse::default()),
        json!(SendTypingResponse::default()),
        json!(NotifyResponse::default()),
        json!(GetBotQrCodeResponse::default()),
        json!(Envelope::default()),
    ] {
        assert_eq!(v, json!({}));
    }
    assert_eq!(
        json!(QrCodeStatusResponse::default()),
        json!({"status": "wait"})
    );
}

#[test]
fn every_enum_value_round_trips() {
    for raw in [
        -1i64,
        0,
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        9,
        11,
        12,
        13,
        i64::MAX,
        i64::MIN,
    ] {
        let j = raw.to_string();
        macro_rules! check {
            ($($t:ty),+) => {$(
                let v: $t = decode(j.as_bytes()).unwrap();
                assert_eq!(v.raw(), raw);
                assert_eq!(serde_json::to_string(&v).unwrap(), j);
                assert_eq!(<$t>::from_raw(raw), v);
            )+};
        }
        check!(
            MessageType,
            MessageState,
            ItemType,
            UploadMediaType,
            TypingStatus,
            VoiceEncodeType
        );
    }
}

#[test]
fn secrets_never_in_debug() {
    let mut updates =
        GetUpdatesResponse::with_messages([&full_message()], Secret::from("CURSOR-SECRET"))
            .unwrap();
    updates.sync_buf = Some(Secret::from("SYNC-SECRET"));
    let qr = QrCodeStatusResponse {
        bot_token: Some(Secret::from("TOKEN-SECRET")),
        ..Default::default()
    };
    let cfg = GetConfigResponse {
        typing_ticket: Some(Secret::from("TICKET-SECRET")),
        ..Default::default()
    };
    let up = GetUploadUrlRequest::new(
        "k",
        UploadMediaType::File,
        "u",
        1,
        "m",
        Secret::from("AESKEY-SECRET"),
        base(),
    );
    let qrreq = GetBotQrCodeRequest::new([Secret::from("LOCAL-SECRET")]);
    let dbg = format!(
        "{updates:?}{qr:?}{cfg:?}{up:?}{qrreq:?}{:?}",
        full_message()
    );
    for s in [
        "CURSOR-SECRET",
        "SYNC-SECRET",
        "TOKEN-SECRET",
        "TICKET-SECRET",
        "AESKEY-SECRET",
        "LOCAL-SECRET",
        "CTX\"",
        "MDAxMTIy",
        "00112233",
    ] {
        assert!(!dbg.contains(s), "{s} leaked: {dbg}");
    }
}
