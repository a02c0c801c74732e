#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod cipher;
mod error;
mod key;
mod md5;
mod stream;

pub use crate::cipher::{
    BLOCK_LEN, EcbCipher, Padding, ciphertext_len, decrypt, decrypt_in_place, decrypt_lenient,
    encrypt, encrypt_in_place,
};
pub use crate::error::{CryptoError, KeyError, RngError};
pub use crate::key::{KEY_LEN, MediaKey};
pub use crate::md5::{Md5Hasher, md5_hex, new_filekey};
pub use crate::stream::{Decryptor, Encryptor};

#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        assert_send_sync::<crate::MediaKey>();
        assert_send_sync::<crate::EcbCipher>();
        assert_send_sync::<crate::Encryptor>();
        assert_send_sync::<crate::Decryptor>();
        assert_send_sync::<crate::Md5Hasher>();
        assert_send_sync::<crate::CryptoError>();
        assert_send_sync::<crate::KeyError>();
        assert_send_sync::<crate::RngError>();
    }
}
