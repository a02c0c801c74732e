//! AES-128-ECB/PKCS#7 throughput of ilink-crypto: one-shot, in place and streaming,
//! encrypt and decrypt, for 1 KiB, 64 KiB and 16 MiB buffers.
//!
//! Compare with `openssl speed -evp aes-128-ecb -bytes 16384` on the same machine.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ilink_crypto::{Decryptor, EcbCipher, Encryptor, MediaKey, Padding};

const SIZES: [(usize, &str); 4] = [
    (1 << 10, "1KiB"),
    (16 << 10, "16KiB"),
    (64 << 10, "64KiB"),
    (16 << 20, "16MiB"),
];

/// Chunk size of the streaming benches: what a file or socket read typically returns.
const STREAM_CHUNK: usize = 64 << 10;

fn data(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761) as u8)
        .collect()
}

fn bench_encrypt(c: &mut Criterion) {
    let key = MediaKey::from_bytes([0x42; 16]);
    let cipher = EcbCipher::new(&key);
    let mut group = c.benchmark_group("aes128_ecb_encrypt");
    for (len, name) in SIZES {
        if len >= 16 << 20 {
            group.sample_size(20);
        } else {
            group.sample_size(100);
        }
        group.throughput(Throughput::Bytes(len as u64));
        let plain = data(len);

        group.bench_function(BenchmarkId::new("one_shot", name), |b| {
            b.iter(|| black_box(cipher.encrypt(black_box(&plain))));
        });

        // In place on the whole buffer (raw blocks): the figure to compare with openssl,
        // which also encrypts a caller's buffer without allocating.
        let mut buf = plain.clone();
        group.bench_function(BenchmarkId::new("in_place_blocks", name), |b| {
            b.iter(|| cipher.encrypt_blocks(black_box(&mut buf)).unwrap());
        });

        // In place with padding, on a Vec with room for it.
        let mut vec = Vec::with_capacity(len + 16);
        group.bench_function(BenchmarkId::new("in_place_padded", name), |b| {
            b.iter(|| {
                vec.clear();
                vec.extend_from_slice(&plain);
                cipher.encrypt_in_place(black_box(&mut vec));
            });
        });

        let mut out = Vec::with_capacity(len + 16);
        group.bench_function(BenchmarkId::new("streaming", name), |b| {
            b.iter(|| {
                out.clear();
                let mut enc = Encryptor::with_cipher(cipher.clone());
                for chunk in plain.chunks(STREAM_CHUNK) {
                    enc.update(chunk, &mut out);
                }
                enc.finish(&mut out);
                black_box(&out);
            });
        });
    }
    group.finish();
}

fn bench_decrypt(c: &mut Criterion) {
    let key = MediaKey::from_bytes([0x42; 16]);
    let cipher = EcbCipher::new(&key);
    let mut group = c.benchmark_group("aes128_ecb_decrypt");
    for (len, name) in SIZES {
        if len >= 16 << 20 {
            group.sample_size(20);
        } else {
            group.sample_size(100);
        }
        group.throughput(Throughput::Bytes(len as u64));
        let ct = cipher.encrypt(&data(len));

        group.bench_function(BenchmarkId::new("one_shot", name), |b| {
            b.iter(|| black_box(cipher.decrypt(black_box(&ct)).unwrap()));
        });

        let mut buf = ct.clone();
        group.bench_function(BenchmarkId::new("in_place_blocks", name), |b| {
            b.iter(|| cipher.decrypt_blocks(black_box(&mut buf)).unwrap());
        });

        let mut vec = Vec::with_capacity(ct.len());
        group.bench_function(BenchmarkId::new("in_place_padded", name), |b| {
            b.iter(|| {
                vec.clear();
                vec.extend_from_slice(&ct);
                cipher
                    .decrypt_in_place(black_box(&mut vec), Padding::Strict)
                    .unwrap();
            });
        });

        let mut out = Vec::with_capacity(ct.len());
        group.bench_function(BenchmarkId::new("streaming", name), |b| {
            b.iter(|| {
                out.clear();
                let mut dec = Decryptor::with_cipher(cipher.clone(), Padding::Strict);
                for chunk in ct.chunks(STREAM_CHUNK) {
                    dec.update(chunk, &mut out);
                }
                dec.finish(&mut out).unwrap();
                black_box(&out);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_encrypt, bench_decrypt);
criterion_main!(benches);
