//! GGML tensor types (block size and bytes per block) and llama.cpp file types, from gguf-py's constants.py.

use pyxis_resources::Precision;

/// One GGML tensor type: `block` elements take `block_bytes` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GgmlType {
    pub id: u32,
    pub name: &'static str,
    pub block: u64,
    pub block_bytes: u64,
}

const QK_K: u64 = 256;

const fn t(id: u32, name: &'static str, block: u64, block_bytes: u64) -> GgmlType {
    GgmlType {
        id,
        name,
        block,
        block_bytes,
    }
}

/// `GGML_QUANT_SIZES` of gguf-py (llama.cpp `gguf-py/gguf/constants.py`).
const TYPES: &[GgmlType] = &[
    t(0, "F32", 1, 4),
    t(1, "F16", 1, 2),
    t(2, "Q4_0", 32, 2 + 16),
    t(3, "Q4_1", 32, 2 + 2 + 16),
    t(6, "Q5_0", 32, 2 + 4 + 16),
    t(7, "Q5_1", 32, 2 + 2 + 4 + 16),
    t(8, "Q8_0", 32, 2 + 32),
    t(9, "Q8_1", 32, 4 + 4 + 32),
    t(10, "Q2_K", 256, 2 + 2 + QK_K / 16 + QK_K / 4),
    t(11, "Q3_K", 256, 2 + QK_K / 4 + QK_K / 8 + 12),
    t(12, "Q4_K", 256, 2 + 2 + QK_K / 2 + 12),
    t(13, "Q5_K", 256, 2 + 2 + QK_K / 2 + QK_K / 8 + 12),
    t(14, "Q6_K", 256, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16),
    t(15, "Q8_K", 256, 4 + QK_K + QK_K / 8),
    t(16, "IQ2_XXS", 256, 2 + QK_K / 4),
    t(17, "IQ2_XS", 256, 2 + QK_K / 4 + QK_K / 32),
    t(18, "IQ3_XXS", 256, 2 + QK_K / 4 + QK_K / 8),
    t(19, "IQ1_S", 256, 2 + QK_K / 8 + QK_K / 16),
    t(20, "IQ4_NL", 32, 2 + 16),
    t(21, "IQ3_S", 256, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4),
    t(22, "IQ2_S", 256, 2 + QK_K / 4 + QK_K / 16),
    t(23, "IQ4_XS", 256, 2 + 2 + QK_K / 2 + QK_K / 64),
    t(24, "I8", 1, 1),
    t(25, "I16", 1, 2),
    t(26, "I32", 1, 4),
    t(27, "I64", 1, 8),
    t(28, "F64", 1, 8),
    t(29, "IQ1_M", 256, QK_K / 8 + QK_K / 16 + QK_K / 32),
    t(30, "BF16", 1, 2),
    t(34, "TQ1_0", 256, 2 + 4 * 13),
    t(35, "TQ2_0", 256, 2 + 64),
    t(39, "MXFP4", 32, 1 + 16),
    t(40, "NVFP4", 64, 4 + 32),
    t(41, "Q1_0", 128, 2 + 16),
    t(42, "Q2_0", 64, 2 + 16),
];

impl GgmlType {
    pub fn find(id: u32) -> Option<GgmlType> {
        TYPES.iter().copied().find(|t| t.id == id)
    }

    pub fn known_names() -> String {
        TYPES.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
    }
}

/// `LlamaFileType` (`general.file_type`): what most of the tensors were quantised to.
pub(crate) fn file_type_name(id: u64) -> Option<&'static str> {
    Some(match id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        4 => "Q4_1_SOME_F16",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        33 => "Q4_0_4_4",
        34 => "Q4_0_4_8",
        35 => "Q4_0_8_8",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        39 => "NVFP4",
        40 => "Q1_0",
        41 => "Q2_0",
        _ => return None,
    })
}

/// The Pyxis precision class a GGUF type or file type name falls in, rounding up (Q5 and Q6 count as
/// int8, every type under 5 bits as int4); none for F32 and F64, which have no class.
pub(crate) fn precision_class(name: &str) -> Option<Precision> {
    let n = name.to_ascii_uppercase();
    if n == "F16" {
        Some(Precision::Fp16)
    } else if n == "BF16" {
        Some(Precision::Bf16)
    } else if n.starts_with("Q8") || n.starts_with("Q6") || n.starts_with("Q5") || n == "I8" {
        Some(Precision::Int8)
    } else if ["Q4", "Q3", "Q2", "Q1", "IQ", "TQ", "MXFP4", "NVFP4"]
        .iter()
        .any(|p| n.starts_with(p))
    {
        Some(Precision::Int4)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_match_llama_cpp() {
        let q4k = GgmlType::find(12).unwrap();
        assert_eq!((q4k.name, q4k.block, q4k.block_bytes), ("Q4_K", 256, 144));
        assert_eq!(GgmlType::find(14).unwrap().block_bytes, 210);
        assert_eq!(GgmlType::find(8).unwrap().block_bytes, 34);
        assert_eq!(GgmlType::find(29).unwrap().block_bytes, 56);
        assert!(GgmlType::find(4).is_none());
    }

    #[test]
    fn classes_round_up() {
        assert_eq!(precision_class("Q4_K_M"), Some(Precision::Int4));
        assert_eq!(precision_class("Q5_K_M"), Some(Precision::Int8));
        assert_eq!(precision_class("IQ2_XXS"), Some(Precision::Int4));
        assert_eq!(precision_class("BF16"), Some(Precision::Bf16));
        assert_eq!(precision_class("F32"), None);
    }
}
