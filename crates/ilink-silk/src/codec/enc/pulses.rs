//! Excitation pulse coding: a rate level per frame, the pulse count of each 16-sample block
//! (with extra LSB rounds for blocks of more than 18 pulses), the binary "shell" tree that
//! splits each count down to single positions, the LSBs, and the signs.

#![forbid(unsafe_code)]

use super::super::tables as t;
use super::range::RangeEncoder;

const BLOCK: usize = 16;
const MAX_PULSES: u32 = 18;
const N_RATE_LEVELS: usize = 10;
const MAX_BLOCKS: usize = 30;

fn sub(table: &[u16], start: usize) -> &[u16] {
    table.get(start..).unwrap_or(&[])
}

/// The cost of symbol `s` of `cdf` in bits.
pub(crate) fn symbol_bits(cdf: &[u16], s: usize) -> f32 {
    let lo = cdf.get(s).copied().unwrap_or(0);
    let hi = cdf.get(s + 1).copied().unwrap_or(0xFFFF);
    let p = f32::from(hi.saturating_sub(lo).max(1)) / 65536.0;
    -p.log2()
}

/// Per-block pulse sums after removing `shifts` LSBs.
fn block_layout(q: &[i32]) -> ([u32; MAX_BLOCKS], [u32; MAX_BLOCKS], usize) {
    let mut sums = [0u32; MAX_BLOCKS];
    let mut shifts = [0u32; MAX_BLOCKS];
    let blocks = (q.len() / BLOCK).min(MAX_BLOCKS);
    for b in 0..blocks {
        let block = &q[b * BLOCK..(b + 1) * BLOCK];
        let mut n = 0u32;
        loop {
            let mut v = [0u32; BLOCK];
            for (o, x) in v.iter_mut().zip(block) {
                *o = x.unsigned_abs() >> n;
            }
            if fits_tables(&v) || n >= 31 {
                sums[b] = v.iter().sum::<u32>().min(MAX_PULSES);
                break;
            }
            n += 1;
        }
        shifts[b] = n;
    }
    (sums, shifts, blocks)
}

/// Whether every node of the block's split tree is within its level's table: at most 6
/// pulses per pair, 8 per quad, 12 per octet and 18 in the block (the decoder's shell tables
/// end there).
fn fits_tables(v: &[u32; BLOCK]) -> bool {
    let mut level: [u32; BLOCK] = *v;
    let mut len = BLOCK;
    for max in [6u32, 8, 12, 18] {
        len /= 2;
        for i in 0..len {
            level[i] = level[2 * i] + level[2 * i + 1];
            if level[i] > max {
                return false;
            }
        }
    }
    true
}

fn encode_split(rc: &mut RangeEncoder, total: u32, left: u32, table: &[u16]) {
    if total > 0 {
        let off = t::SHELL_CODE_TABLE_OFFSETS
            .get(total as usize)
            .copied()
            .unwrap_or(0);
        rc.encode(sub(table, off), left as usize);
    }
}

fn shell_encode(rc: &mut RangeEncoder, v: &[u32; BLOCK]) {
    let mut p1 = [0u32; 8];
    for i in 0..8 {
        p1[i] = v[2 * i] + v[2 * i + 1];
    }
    let p2 = [p1[0] + p1[1], p1[2] + p1[3], p1[4] + p1[5], p1[6] + p1[7]];
    let p3 = [p2[0] + p2[1], p2[2] + p2[3]];
    encode_split(rc, p3[0] + p3[1], p3[0], &t::SHELL_CODE_TABLE3);
    for a in 0..2 {
        encode_split(rc, p3[a], p2[2 * a], &t::SHELL_CODE_TABLE2);
        for b in 2 * a..2 * a + 2 {
            encode_split(rc, p2[b], p1[2 * b], &t::SHELL_CODE_TABLE1);
            for c in 2 * b..2 * b + 2 {
                encode_split(rc, p1[c], v[2 * c], &t::SHELL_CODE_TABLE0);
            }
        }
    }
}

/// Codes the frame's pulses `q` (signed; length a multiple of 16, at most 480).
pub(crate) fn encode_pulses(rc: &mut RangeEncoder, q: &[i32], sigtype: usize, qot: usize) {
    let (sums, shifts, blocks) = block_layout(q);
    let nonzero = q.iter().filter(|&&v| v != 0).count() as f32;
    // The rate level with the fewest bits for the block sums and signs.
    let mut best = (f32::MAX, 0usize);
    for level in 0..N_RATE_LEVELS - 1 {
        let cdf = sub(&t::PULSES_PER_BLOCK_CDF, level * 21);
        let mut bits = symbol_bits(sub(&t::RATE_LEVELS_CDF, sigtype * 10), level);
        for b in 0..blocks {
            let s = if shifts[b] > 0 {
                MAX_PULSES + 1
            } else {
                sums[b]
            };
            bits += symbol_bits(cdf, s as usize);
        }
        let i = (N_RATE_LEVELS - 1) * ((sigtype << 1) + qot) + level;
        let p = f32::from(t::SIGN_CDF.get(i).copied().unwrap_or(32768));
        let sign_bits = 0.5 * (-(p / 65536.0).log2() - (1.0 - p / 65536.0).log2());
        bits += nonzero * sign_bits;
        if bits < best.0 {
            best = (bits, level);
        }
    }
    let level = best.1;
    rc.encode(sub(&t::RATE_LEVELS_CDF, sigtype * 10), level);
    let cdf = sub(&t::PULSES_PER_BLOCK_CDF, level * 21);
    let lsb_cdf = sub(&t::PULSES_PER_BLOCK_CDF, (N_RATE_LEVELS - 1) * 21);
    for b in 0..blocks {
        if shifts[b] == 0 {
            rc.encode(cdf, sums[b] as usize);
        } else {
            rc.encode(cdf, (MAX_PULSES + 1) as usize);
            for _ in 1..shifts[b] {
                rc.encode(lsb_cdf, (MAX_PULSES + 1) as usize);
            }
            rc.encode(lsb_cdf, sums[b] as usize);
        }
    }
    for b in 0..blocks {
        if sums[b] > 0 {
            let mut v = [0u32; BLOCK];
            for (o, x) in v.iter_mut().zip(&q[b * BLOCK..(b + 1) * BLOCK]) {
                *o = x.unsigned_abs() >> shifts[b];
            }
            shell_encode(rc, &v);
        }
    }
    for b in 0..blocks {
        let n = shifts[b];
        if n > 0 {
            for x in &q[b * BLOCK..(b + 1) * BLOCK] {
                let a = x.unsigned_abs();
                for j in (0..n).rev() {
                    rc.encode(&t::LSB_CDF, ((a >> j) & 1) as usize);
                }
            }
        }
    }
    let i = (N_RATE_LEVELS - 1) * ((sigtype << 1) + qot) + level;
    let sign_cdf = [0, t::SIGN_CDF.get(i).copied().unwrap_or(32768), 65535];
    for &x in q.iter().take(blocks * BLOCK) {
        if x != 0 {
            rc.encode(&sign_cdf, usize::from(x > 0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::params::FrameParams;
    use super::super::super::{Decoder, MAX_FRAME_LENGTH};
    use super::*;

    #[test]
    fn pulses_round_trip_through_the_decoder() {
        let mut s = 99u32;
        for case in 0..60 {
            let scale = [0u32, 1, 2, 5, 40, 700][case % 6];
            let mut q = [0i32; 160];
            for v in q.iter_mut() {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let m = if scale == 0 {
                    0
                } else {
                    (s >> 20) % (scale + 1)
                };
                *v = if s & 0x100 != 0 {
                    m as i32
                } else {
                    -(m as i32)
                };
            }
            let sigtype = case & 1;
            let qot = (case >> 1) & 1;
            let mut rc = RangeEncoder::new();
            encode_pulses(&mut rc, &q, sigtype, qot);
            let bytes = rc.finish();
            let mut d = Decoder::new();
            d.set_fs(8);
            d.rc.init(&bytes);
            let mut ctrl = FrameParams {
                sigtype,
                quant_offset_type: qot,
                ..FrameParams::default()
            };
            let mut out = [0i32; MAX_FRAME_LENGTH];
            d.decode_pulses(&mut ctrl, &mut out);
            assert!(d.rc.error.is_none(), "case {case}");
            assert_eq!(&out[..160], &q[..], "case {case}");
        }
    }
}
