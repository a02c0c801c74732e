#!/usr/bin/env python3
"""Generates src/codec/tables.rs from the SILK SDK's table sources (data only).

Usage: gen_tables.py <path to silk-sys-0.1.0/silk/src> > src/codec/tables.rs

Every table is copied value for value from the file named in its doc comment; the
decoder's code does not come from there. Arrays are flattened to one dimension.
"""
import re
import sys
import os

SRC = sys.argv[1]

FILES = [
    "SKP_Silk_tables_LTP.c",
    "SKP_Silk_tables_NLSF_CB0_10.c",
    "SKP_Silk_tables_NLSF_CB1_10.c",
    "SKP_Silk_tables_NLSF_CB0_16.c",
    "SKP_Silk_tables_NLSF_CB1_16.c",
    "SKP_Silk_tables_gain.c",
    "SKP_Silk_tables_other.c",
    "SKP_Silk_tables_pitch_lag.c",
    "SKP_Silk_tables_pulses_per_block.c",
    "SKP_Silk_tables_sign.c",
    "SKP_Silk_tables_type_offset.c",
    "SKP_Silk_LSF_cos_table.c",
    "SKP_Silk_resampler_rom.c",
    "SKP_Silk_pitch_est_tables.c",
]

WANTED = {
    # name in C: (rust name, rust type)
    "SKP_Silk_LTP_per_index_CDF": ("LTP_PER_INDEX_CDF", "u16"),
    "SKP_Silk_LTP_gain_CDF_0": ("LTP_GAIN_CDF_0", "u16"),
    "SKP_Silk_LTP_gain_CDF_1": ("LTP_GAIN_CDF_1", "u16"),
    "SKP_Silk_LTP_gain_CDF_2": ("LTP_GAIN_CDF_2", "u16"),
    "SKP_Silk_LTP_gain_CDF_offsets": ("LTP_GAIN_CDF_OFFSETS", "usize"),
    "SKP_Silk_LTP_gain_vq_0_Q14": ("LTP_GAIN_VQ_0_Q14", "i16"),
    "SKP_Silk_LTP_gain_vq_1_Q14": ("LTP_GAIN_VQ_1_Q14", "i16"),
    "SKP_Silk_LTP_gain_vq_2_Q14": ("LTP_GAIN_VQ_2_Q14", "i16"),
    "SKP_Silk_gain_CDF": ("GAIN_CDF", "u16"),
    "SKP_Silk_delta_gain_CDF": ("DELTA_GAIN_CDF", "u16"),
    "SKP_Silk_Dec_A_HP_24": ("DEC_A_HP_24", "i16"),
    "SKP_Silk_Dec_B_HP_24": ("DEC_B_HP_24", "i16"),
    "SKP_Silk_Dec_A_HP_16": ("DEC_A_HP_16", "i16"),
    "SKP_Silk_Dec_B_HP_16": ("DEC_B_HP_16", "i16"),
    "SKP_Silk_Dec_A_HP_12": ("DEC_A_HP_12", "i16"),
    "SKP_Silk_Dec_B_HP_12": ("DEC_B_HP_12", "i16"),
    "SKP_Silk_Dec_A_HP_8": ("DEC_A_HP_8", "i16"),
    "SKP_Silk_Dec_B_HP_8": ("DEC_B_HP_8", "i16"),
    "SKP_Silk_lsb_CDF": ("LSB_CDF", "u16"),
    "SKP_Silk_LTPscale_CDF": ("LTP_SCALE_CDF", "u16"),
    "SKP_Silk_vadflag_CDF": ("VAD_FLAG_CDF", "u16"),
    "SKP_Silk_SamplingRates_table": ("SAMPLING_RATES_KHZ", "u32"),
    "SKP_Silk_SamplingRates_CDF": ("SAMPLING_RATES_CDF", "u16"),
    "SKP_Silk_NLSF_interpolation_factor_CDF": ("NLSF_INTERPOLATION_FACTOR_CDF", "u16"),
    "SKP_Silk_FrameTermination_CDF": ("FRAME_TERMINATION_CDF", "u16"),
    "SKP_Silk_Seed_CDF": ("SEED_CDF", "u16"),
    "SKP_Silk_Quantization_Offsets_Q10": ("QUANTIZATION_OFFSETS_Q10", "i16"),
    "SKP_Silk_LTPScales_table_Q14": ("LTP_SCALES_Q14", "i16"),
    "SKP_Silk_pitch_lag_NB_CDF": ("PITCH_LAG_NB_CDF", "u16"),
    "SKP_Silk_pitch_contour_NB_CDF": ("PITCH_CONTOUR_NB_CDF", "u16"),
    "SKP_Silk_pitch_lag_MB_CDF": ("PITCH_LAG_MB_CDF", "u16"),
    "SKP_Silk_pitch_lag_WB_CDF": ("PITCH_LAG_WB_CDF", "u16"),
    "SKP_Silk_pitch_lag_SWB_CDF": ("PITCH_LAG_SWB_CDF", "u16"),
    "SKP_Silk_pitch_contour_CDF": ("PITCH_CONTOUR_CDF", "u16"),
    "SKP_Silk_pulses_per_block_CDF": ("PULSES_PER_BLOCK_CDF", "u16"),
    "SKP_Silk_rate_levels_CDF": ("RATE_LEVELS_CDF", "u16"),
    "SKP_Silk_shell_code_table0": ("SHELL_CODE_TABLE0", "u16"),
    "SKP_Silk_shell_code_table1": ("SHELL_CODE_TABLE1", "u16"),
    "SKP_Silk_shell_code_table2": ("SHELL_CODE_TABLE2", "u16"),
    "SKP_Silk_shell_code_table3": ("SHELL_CODE_TABLE3", "u16"),
    "SKP_Silk_shell_code_table_offsets": ("SHELL_CODE_TABLE_OFFSETS", "usize"),
    "SKP_Silk_sign_CDF": ("SIGN_CDF", "u16"),
    "SKP_Silk_type_offset_CDF": ("TYPE_OFFSET_CDF", "u16"),
    "SKP_Silk_type_offset_joint_CDF": ("TYPE_OFFSET_JOINT_CDF", "u16"),
    "SKP_Silk_LSFCosTab_FIX_Q12": ("LSF_COS_TAB_Q12", "i32"),
    "SKP_Silk_resampler_up2_hq_0": ("RESAMPLER_UP2_HQ_0", "i16"),
    "SKP_Silk_resampler_up2_hq_1": ("RESAMPLER_UP2_HQ_1", "i16"),
    "SKP_Silk_resampler_up2_hq_notch": ("RESAMPLER_UP2_HQ_NOTCH", "i16"),
    "SKP_Silk_Resampler_3_4_COEFS": ("RESAMPLER_3_4_COEFS", "i16"),
    "SKP_Silk_Resampler_2_3_COEFS": ("RESAMPLER_2_3_COEFS", "i16"),
    "SKP_Silk_Resampler_1_2_COEFS": ("RESAMPLER_1_2_COEFS", "i16"),
    "SKP_Silk_Resampler_3_8_COEFS": ("RESAMPLER_3_8_COEFS", "i16"),
    "SKP_Silk_Resampler_1_3_COEFS": ("RESAMPLER_1_3_COEFS", "i16"),
    "SKP_Silk_Resampler_320_441_ARMA4_COEFS": ("RESAMPLER_320_441_ARMA4_COEFS", "i16"),
    "SKP_Silk_Resampler_240_441_ARMA4_COEFS": ("RESAMPLER_240_441_ARMA4_COEFS", "i16"),
    "SKP_Silk_Resampler_160_441_ARMA4_COEFS": ("RESAMPLER_160_441_ARMA4_COEFS", "i16"),
    "SKP_Silk_Resampler_120_441_ARMA4_COEFS": ("RESAMPLER_120_441_ARMA4_COEFS", "i16"),
    "SKP_Silk_Resampler_80_441_ARMA4_COEFS": ("RESAMPLER_80_441_ARMA4_COEFS", "i16"),
    "SKP_Silk_resampler_frac_FIR_144": ("RESAMPLER_FRAC_FIR_144", "i16"),
    "SKP_Silk_CB_lags_stage2": ("CB_LAGS_STAGE2", "i8"),
    "SKP_Silk_CB_lags_stage3": ("CB_LAGS_STAGE3", "i8"),
}
for cb in ["CB0_10", "CB1_10", "CB0_16", "CB1_16"]:
    WANTED[f"SKP_Silk_NLSF_MSVQ_{cb}_CDF"] = (f"NLSF_{cb}_CDF", "u16")
    WANTED[f"SKP_Silk_NLSF_MSVQ_{cb}_CDF_middle_idx"] = (f"NLSF_{cb}_MIDDLE_IDX", "usize")
    WANTED[f"SKP_Silk_NLSF_MSVQ_{cb}_ndelta_min_Q15"] = (f"NLSF_{cb}_NDELTA_MIN_Q15", "i32")
    WANTED[f"SKP_Silk_NLSF_MSVQ_{cb}_Q15"] = (f"NLSF_{cb}_Q15", "i16")

SCALARS = {
    "SKP_Silk_LTP_per_index_CDF_offset": "LTP_PER_INDEX_CDF_OFFSET",
    "SKP_Silk_gain_CDF_offset": "GAIN_CDF_OFFSET",
    "SKP_Silk_delta_gain_CDF_offset": "DELTA_GAIN_CDF_OFFSET",
    "SKP_Silk_LTPscale_offset": "LTP_SCALE_OFFSET",
    "SKP_Silk_vadflag_offset": "VAD_FLAG_OFFSET",
    "SKP_Silk_SamplingRates_offset": "SAMPLING_RATES_OFFSET",
    "SKP_Silk_NLSF_interpolation_factor_offset": "NLSF_INTERPOLATION_FACTOR_OFFSET",
    "SKP_Silk_FrameTermination_offset": "FRAME_TERMINATION_OFFSET",
    "SKP_Silk_Seed_offset": "SEED_OFFSET",
    "SKP_Silk_pitch_lag_NB_CDF_offset": "PITCH_LAG_NB_CDF_OFFSET",
    "SKP_Silk_pitch_contour_NB_CDF_offset": "PITCH_CONTOUR_NB_CDF_OFFSET",
    "SKP_Silk_pitch_lag_MB_CDF_offset": "PITCH_LAG_MB_CDF_OFFSET",
    "SKP_Silk_pitch_lag_WB_CDF_offset": "PITCH_LAG_WB_CDF_OFFSET",
    "SKP_Silk_pitch_lag_SWB_CDF_offset": "PITCH_LAG_SWB_CDF_OFFSET",
    "SKP_Silk_pitch_contour_CDF_offset": "PITCH_CONTOUR_CDF_OFFSET",
    "SKP_Silk_pulses_per_block_CDF_offset": "PULSES_PER_BLOCK_CDF_OFFSET",
    "SKP_Silk_rate_levels_CDF_offset": "RATE_LEVELS_CDF_OFFSET",
    "SKP_Silk_type_offset_CDF_offset": "TYPE_OFFSET_CDF_OFFSET",
}


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


DEFINES = {}
for header in ["SKP_Silk_define.h"]:
    for m in re.finditer(r"#define\s+(\w+)\s+(-?\d+)\s*$", strip_comments(open(os.path.join(SRC, header)).read()), flags=re.M):
        DEFINES[m.group(1)] = int(m.group(2))


def number(tok):
    tok = tok.strip()
    # "39809 - 65536" style expressions and the SDK's integer #defines
    return int(eval(tok, {}, dict(DEFINES)))


out = []
emit = out.append
emit("//! SILK codebooks, probability tables and filter coefficients: data copied value for value")
emit("//! from the SILK SDK 1.0.9.6 sources (`silk-sys` 0.1.0, `silk/src/`), generated by")
emit("//! `tools/gen_tables.py`. Do not edit by hand. Multi-dimensional tables are flattened in")
emit("//! row-major order; the doc comment of each names its source file and C name.")
emit("")
emit("#![allow(clippy::unreadable_literal, dead_code)]")
emit("")
found = set()
for fname in FILES:
    text = strip_comments(open(os.path.join(SRC, fname)).read())
    # arrays with brace initialisers
    for m in re.finditer(r"const\s+SKP_\w+\s+(SKP_Silk_\w+)\s*((?:\[[^\]]*\]\s*)+)=\s*\{(.*?)\}\s*;", text, flags=re.S):
        cname, _dims, body = m.group(1), m.group(2), m.group(3)
        if cname not in WANTED:
            continue
        rname, ty = WANTED[cname]
        vals = [number(v) for v in re.split(r"[,{}\s]*,[,{}\s]*|[{}]", body) if v.strip() and v.strip() not in "{}"]
        found.add(cname)
        emit(f"/// `{cname}` ({fname}).")
        lines = []
        for i in range(0, len(vals), 12):
            lines.append("    " + ", ".join(str(v) for v in vals[i:i + 12]) + ",")
        emit(f"pub(crate) const {rname}: [{ty}; {len(vals)}] = [")
        out.extend(lines)
        emit("];")
    for m in re.finditer(r"const\s+SKP_int\s+(SKP_Silk_\w+)\s*=\s*([^;]+);", text):
        cname = m.group(1)
        if cname in SCALARS:
            found.add(cname)
            emit(f"/// `{cname}` ({fname}).")
            emit(f"pub(crate) const {SCALARS[cname]}: usize = {number(m.group(2))};")
    # NLSF start pointers and stage sizes
    for m in re.finditer(r"(SKP_Silk_NLSF_MSVQ_(CB\d_\d+)_CDF_start_ptr)\s*\[[^\]]*\]\s*=\s*\{(.*?)\}\s*;", text, flags=re.S):
        offs = [int(x) for x in re.findall(r"_CDF\[\s*(\d+)\s*\]", m.group(3))]
        emit(f"/// `{m.group(1)}` as offsets into `NLSF_{m.group(2)}_CDF` ({fname}).")
        emit(f"pub(crate) const NLSF_{m.group(2)}_CDF_START: [usize; {len(offs)}] = {offs};")
    for m in re.finditer(r"SKP_Silk_NLSF_(CB\d_\d+)_Stage_info\s*\[[^\]]*\]\s*=\s*\{(.*?)\}\s*;", text, flags=re.S):
        n = [int(x) for x in re.findall(r"\{\s*(\d+)\s*,", m.group(2))]
        emit(f"/// Vectors per stage, from `SKP_Silk_NLSF_{m.group(1)}_Stage_info` ({fname}).")
        emit(f"pub(crate) const NLSF_{m.group(1)}_STAGE_VECTORS: [usize; {len(n)}] = {n};")

missing = set(WANTED) - found
if missing:
    sys.exit(f"missing tables: {sorted(missing)}")
print("\n".join(out))
