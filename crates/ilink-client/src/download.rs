//! Inbound media, in one place: which item of a message holds the media, which key decrypts it,
//! and what it declares about its plaintext (docs/protocol.md §8.4, §12.3, §12.4). The runtime
//! ([`Account::download`](crate::Account::download)), the handler context and the `ilink` CLI
//! all use these, so they choose the same item and key and check the same declarations.

use ilink_cdn::Expected;
use ilink_proto::{CdnMedia, ItemType, MessageItem, Secret};

pub use ilink_crypto::MediaKey;

use crate::error::{Error, ErrorKind, Result};

/// The media item the official client would download (§8.4): the first downloadable item by
/// priority IMAGE > VIDEO > FILE > VOICE (a voice item with a transcript is skipped), else the
/// same choice among the items quoted by TEXT items (`ref_msg.message_item`). An item counts as
/// downloadable when its media has `encrypt_query_param` or `full_url`.
///
/// ```
/// use ilink_client::download::media_item;
/// use ilink_client::proto::{MessageItem, CdnMedia};
/// let media = CdnMedia { encrypt_query_param: Some("P".into()), ..CdnMedia::default() };
/// let items = vec![MessageItem::text("look"), MessageItem::file(media, "a.pdf", 3)];
/// assert_eq!(media_item(&items).unwrap().file_item.as_ref().unwrap().file_name.as_deref(), Some("a.pdf"));
/// assert!(media_item(&[MessageItem::text("no media")]).is_none());
/// ```
pub fn media_item(items: &[MessageItem]) -> Option<&MessageItem> {
    fn pick<'a>(items: &[&'a MessageItem]) -> Option<&'a MessageItem> {
        for wanted in [
            ItemType::Image,
            ItemType::Video,
            ItemType::File,
            ItemType::Voice,
        ] {
            for item in items {
                if item.item_type != wanted || !item.media().is_some_and(CdnMedia::is_downloadable)
                {
                    continue;
                }
                if wanted == ItemType::Voice
                    && item
                        .voice_item
                        .as_ref()
                        .and_then(|v| v.text.as_deref())
                        .is_some_and(|t| !t.is_empty())
                {
                    continue;
                }
                return Some(item);
            }
        }
        None
    }
    let own: Vec<&MessageItem> = items.iter().collect();
    if let Some(item) = pick(&own) {
        return Some(item);
    }
    let quoted: Vec<&MessageItem> = items
        .iter()
        .filter(|i| i.item_type == ItemType::Text)
        .filter_map(|i| i.ref_msg.as_ref()?.message_item.as_deref())
        .collect();
    pick(&quoted)
}

/// The key that decrypts an item's media (§12.4): for an image the hex `image_item.aeskey`
/// first, else `media.aes_key`, and `None` when it has neither (a plain image, §12.3); for the
/// other kinds `media.aes_key`, which is required.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] when the item has no media; [`ErrorKind::Media`] when a
/// non-image item has no `aes_key` (its media cannot be decrypted; the official client skips
/// it) or the key is malformed.
pub fn media_key(item: &MessageItem) -> Result<Option<MediaKey>> {
    let key_err = |e: ilink_crypto::KeyError| {
        Error::new(ErrorKind::Media, "the media key of the item is malformed").with_source(e)
    };
    let media = item.media().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            "this item has no downloadable media",
        )
    })?;
    if item.item_type == ItemType::Image {
        let img = item.image_item.as_ref();
        return MediaKey::from_image_item(
            img.and_then(|i| i.aeskey.as_ref()).map(Secret::expose),
            media.aes_key.as_ref().map(Secret::expose),
        )
        .map_err(key_err);
    }
    let aes = media
        .aes_key
        .as_ref()
        .map(Secret::expose)
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Media,
                "the item has no aes_key, so its media cannot be decrypted",
            )
        })?;
    MediaKey::from_cdn_aes_key(aes).map(Some).map_err(key_err)
}

/// What an item declares about its plaintext, checked by every download of the runtime and the
/// CLI: `file_item.len` (decimal text) and `file_item.md5`, `video_item.video_md5` (MD5 hex of
/// the plaintext, as the emulator and uploads carry it). `image_item.mid_size` and
/// `video_item.video_size` are ciphertext sizes on outbound items (§9) and their meaning on
/// inbound items is not established, so they are not checked.
pub fn expected(item: &MessageItem) -> Expected {
    let mut e = Expected::new();
    if let Some(f) = &item.file_item {
        if let Some(len) = f.len_bytes() {
            e = e.with_len(len);
        }
        if let Some(md5) = f.md5.as_deref() {
            e = e.with_md5_hex(md5);
        }
    }
    if let Some(md5) = item
        .video_item
        .as_ref()
        .and_then(|v| v.video_md5.as_deref())
    {
        e = e.with_md5_hex(md5);
    }
    e
}

/// The file name an item gives its media, if any (`file_item.file_name`), reduced to its last
/// path component, without control characters; `None` if nothing usable is left.
pub fn file_name(item: &MessageItem) -> Option<String> {
    let raw = item.file_item.as_ref()?.file_name.as_deref()?;
    let last = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let clean: String = last.chars().filter(|c| !c.is_control()).collect();
    let clean = clean.trim();
    (!clean.is_empty() && clean != "." && clean != "..").then(|| clean.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ilink_proto::{FileItem, ImageItem};

    fn file_item(name: &str) -> MessageItem {
        MessageItem {
            item_type: ItemType::File,
            file_item: Some(FileItem {
                file_name: Some(name.into()),
                ..FileItem::default()
            }),
            ..MessageItem::default()
        }
    }

    #[test]
    fn file_names_are_reduced_to_one_component() {
        assert_eq!(file_name(&file_item("a.pdf")).as_deref(), Some("a.pdf"));
        assert_eq!(
            file_name(&file_item("../../etc/passwd")).as_deref(),
            Some("passwd")
        );
        assert_eq!(
            file_name(&file_item("C:\\x\\y.doc")).as_deref(),
            Some("y.doc")
        );
        assert_eq!(file_name(&file_item("a\nb")).as_deref(), Some("ab"));
        assert_eq!(file_name(&file_item("..")), None);
        assert_eq!(file_name(&file_item("dir/")), None);
    }

    #[test]
    fn keys() {
        let media = CdnMedia {
            encrypt_query_param: Some("P".into()),
            ..CdnMedia::default()
        };
        // An image without a key is plain; a file without one cannot be decrypted.
        let img = MessageItem {
            item_type: ItemType::Image,
            image_item: Some(ImageItem {
                media: Some(media.clone()),
                ..ImageItem::default()
            }),
            ..MessageItem::default()
        };
        assert!(media_key(&img).unwrap().is_none());
        let file = MessageItem::file(media, "a", 1);
        assert_eq!(media_key(&file).unwrap_err().kind(), ErrorKind::Media);
        assert_eq!(
            media_key(&MessageItem::text("x")).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
}
