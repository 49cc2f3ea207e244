//! The header of one safetensors file: 8-byte little-endian length, then JSON. The weights are never read.

use std::io::Read;

use crate::error::{Bad, HINT_REDOWNLOAD, HINT_UPDATE};

/// Headers above this are refused: real ones are a few MiB even for the largest shards, and the
/// header is read whole into memory.
pub const MAX_HEADER_BYTES: u64 = 100 << 20;

/// One tensor as its header describes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tensor {
    pub name: String,
    pub dtype: Dtype,
    pub elements: u64,
    pub bytes: u64,
}

/// The safetensors element types, with their size in bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Dtype {
    Bool,
    F4,
    F6E2M3,
    F6E3M2,
    U8,
    I8,
    F8E5M2,
    F8E4M3,
    F8E8M0,
    I16,
    U16,
    F16,
    Bf16,
    I32,
    U32,
    F32,
    C64,
    F64,
    I64,
    U64,
}

const DTYPES: [(&str, Dtype, u64); 20] = [
    ("BOOL", Dtype::Bool, 8),
    ("F4", Dtype::F4, 4),
    ("F6_E2M3", Dtype::F6E2M3, 6),
    ("F6_E3M2", Dtype::F6E3M2, 6),
    ("U8", Dtype::U8, 8),
    ("I8", Dtype::I8, 8),
    ("F8_E5M2", Dtype::F8E5M2, 8),
    ("F8_E4M3", Dtype::F8E4M3, 8),
    ("F8_E8M0", Dtype::F8E8M0, 8),
    ("I16", Dtype::I16, 16),
    ("U16", Dtype::U16, 16),
    ("F16", Dtype::F16, 16),
    ("BF16", Dtype::Bf16, 16),
    ("I32", Dtype::I32, 32),
    ("U32", Dtype::U32, 32),
    ("F32", Dtype::F32, 32),
    ("C64", Dtype::C64, 64),
    ("F64", Dtype::F64, 64),
    ("I64", Dtype::I64, 64),
    ("U64", Dtype::U64, 64),
];

impl Dtype {
    fn parse(s: &str) -> Option<Dtype> {
        DTYPES.iter().find(|(n, _, _)| *n == s).map(|&(_, d, _)| d)
    }

    pub fn bits(self) -> u64 {
        DTYPES.iter().find(|(_, d, _)| *d == self).map_or(8, |&(_, _, b)| b)
    }

    /// The name people use for weights stored in this type.
    pub fn precision_name(self) -> &'static str {
        match self {
            Dtype::Bool => "bool",
            Dtype::F4 => "fp4",
            Dtype::F6E2M3 | Dtype::F6E3M2 => "fp6",
            Dtype::U8 => "uint8",
            Dtype::I8 => "int8",
            Dtype::F8E5M2 | Dtype::F8E4M3 | Dtype::F8E8M0 => "fp8",
            Dtype::I16 => "int16",
            Dtype::U16 => "uint16",
            Dtype::F16 => "fp16",
            Dtype::Bf16 => "bf16",
            Dtype::I32 => "int32",
            Dtype::U32 => "uint32",
            Dtype::F32 => "fp32",
            Dtype::C64 => "complex64",
            Dtype::F64 => "fp64",
            Dtype::I64 => "int64",
            Dtype::U64 => "uint64",
        }
    }
}

/// Reads the header of a safetensors file of `file_len` bytes from `r` (positioned at its start)
/// and checks every tensor against the data section, so a cut-off download is caught here.
pub(crate) fn read_header<R: Read>(mut r: R, file_len: u64) -> Result<Vec<Tensor>, Bad> {
    if file_len < 8 {
        return Err(Bad::corrupt(format!(
            "the file is {file_len} bytes, shorter than the 8-byte header length every safetensors file starts with"
        )));
    }
    let mut len = [0u8; 8];
    r.read_exact(&mut len)?;
    let header_len = u64::from_le_bytes(len);
    if header_len > MAX_HEADER_BYTES {
        return Err(Bad::invalid(
            format!(
                "the header length field says {header_len} bytes, above the {} MiB this tool accepts",
                MAX_HEADER_BYTES >> 20
            ),
            "this is not a safetensors file, or it is damaged: check the file",
        ));
    }
    if header_len > file_len - 8 {
        return Err(Bad::corrupt(format!(
            "the header length field says {header_len} bytes but only {} follow it",
            file_len - 8
        )));
    }
    // Bounded by MAX_HEADER_BYTES and by the file's real length, checked above.
    let mut header = vec![0u8; usize::try_from(header_len).map_err(|_| Bad::corrupt("header too large"))?];
    r.read_exact(&mut header)?;
    let data_len = file_len - 8 - header_len;
    parse_header_json(trim_padding(&header), data_len)
}

/// Writers pad the header with spaces to an 8-byte boundary; some use NULs.
fn trim_padding(h: &[u8]) -> &[u8] {
    let end = h.iter().rposition(|&b| b != b' ' && b != 0).map_or(0, |i| i + 1);
    &h[..end]
}

fn parse_header_json(header: &[u8], data_len: u64) -> Result<Vec<Tensor>, Bad> {
    let json: serde_json::Value =
        serde_json::from_slice(header).map_err(|e| Bad::corrupt(format!("the JSON header does not parse: {e}")))?;
    let serde_json::Value::Object(map) = json else {
        return Err(Bad::corrupt("the JSON header is not an object"));
    };
    let mut tensors = Vec::with_capacity(map.len());
    let mut spans = Vec::with_capacity(map.len());
    for (name, entry) in map {
        if name == "__metadata__" {
            continue;
        }
        let (tensor, span) = parse_entry(&name, &entry, data_len)?;
        tensors.push(tensor);
        spans.push((span, tensors.len() - 1));
    }
    // Overlapping tensors would count the same bytes twice; safetensors itself refuses them.
    spans.sort_unstable();
    for pair in spans.windows(2) {
        if let [((_, end), a), ((begin, _), b)] = pair
            && begin < end
        {
            return Err(Bad::corrupt(format!(
                "tensors `{}` and `{}` overlap in the data section",
                tensors[*a].name, tensors[*b].name
            )));
        }
    }
    Ok(tensors)
}

fn parse_entry(name: &str, entry: &serde_json::Value, data_len: u64) -> Result<(Tensor, (u64, u64)), Bad> {
    let bad = |what: &str| Bad::corrupt(format!("tensor `{name}`: {what}"));
    let dtype_name = entry
        .get("dtype")
        .and_then(|d| d.as_str())
        .ok_or_else(|| bad("no `dtype` string"))?;
    let dtype = Dtype::parse(dtype_name).ok_or_else(|| {
        Bad::invalid(
            format!(
                "tensor `{name}` has dtype `{dtype_name}`, which this tool does not know (it knows {})",
                DTYPES.map(|(n, _, _)| n).join(", ")
            ),
            HINT_UPDATE,
        )
    })?;
    let shape = entry
        .get("shape")
        .and_then(|s| s.as_array())
        .ok_or_else(|| bad("no `shape` array"))?;
    let mut elements: u64 = 1;
    for dim in shape {
        let d = dim
            .as_u64()
            .ok_or_else(|| bad("a `shape` entry is not a non-negative integer"))?;
        elements = elements
            .checked_mul(d)
            .ok_or_else(|| bad("the shape's element count overflows 64 bits"))?;
    }
    let bytes = elements
        .checked_mul(dtype.bits())
        .map(|b| b.div_ceil(8))
        .ok_or_else(|| bad("the tensor's byte size overflows 64 bits"))?;
    let offsets = entry
        .get("data_offsets")
        .and_then(|o| o.as_array())
        .ok_or_else(|| bad("no `data_offsets` array"))?;
    let (begin, end) = match offsets.as_slice() {
        [b, e] => (
            b.as_u64().ok_or_else(|| bad("`data_offsets` are not integers"))?,
            e.as_u64().ok_or_else(|| bad("`data_offsets` are not integers"))?,
        ),
        _ => return Err(bad("`data_offsets` is not a pair")),
    };
    if begin > end || end - begin != bytes {
        return Err(bad(&format!(
            "`data_offsets` [{begin}, {end}] do not hold {bytes} bytes as {dtype_name} {shape:?} needs",
            shape = shape.iter().map(|d| d.as_u64().unwrap_or(0)).collect::<Vec<_>>()
        )));
    }
    if end > data_len {
        return Err(Bad::invalid(
            format!("tensor `{name}` ends at byte {end} of the data section, but the file holds only {data_len}"),
            HINT_REDOWNLOAD,
        ));
    }
    let tensor = Tensor {
        name: name.to_string(),
        dtype,
        elements,
        bytes,
    };
    Ok((tensor, (begin, end)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file(header: &str, data_len: usize) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.resize(v.len() + data_len, 0);
        v
    }

    fn read(bytes: &[u8]) -> Result<Vec<Tensor>, Bad> {
        read_header(bytes, bytes.len() as u64)
    }

    fn problem(r: Result<Vec<Tensor>, Bad>) -> String {
        match r {
            Err(Bad::Invalid { problem, .. }) => problem,
            other => panic!("expected a complaint, got {other:?}"),
        }
    }

    const GOOD: &str = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},"b":{"dtype":"F32","shape":[],"data_offsets":[12,16]}}  "#;

    #[test]
    fn reads_tensors_and_ignores_metadata() {
        let t = read(&file(GOOD, 16)).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].name.as_str(), t[0].elements, t[0].bytes), ("a", 6, 12));
        assert_eq!((t[1].name.as_str(), t[1].elements, t[1].bytes), ("b", 1, 4));
    }

    #[test]
    fn refuses_huge_or_overlong_header_lengths() {
        let mut f = u64::MAX.to_le_bytes().to_vec();
        f.extend_from_slice(b"{}");
        assert!(problem(read(&f)).contains("above the 100 MiB"));
        let mut f = 50u64.to_le_bytes().to_vec();
        f.extend_from_slice(b"{}");
        assert!(problem(read(&f)).contains("only 2 follow"));
        assert!(problem(read(b"abc")).contains("shorter than the 8-byte"));
    }

    #[test]
    fn catches_truncated_data_and_bad_offsets() {
        assert!(problem(read(&file(GOOD, 15))).contains("ends at byte 16"));
        let h = r#"{"a":{"dtype":"F16","shape":[4],"data_offsets":[0,6]}}"#;
        assert!(problem(read(&file(h, 8))).contains("do not hold 8 bytes"));
    }

    #[test]
    fn names_unknown_dtypes() {
        let h = r#"{"a":{"dtype":"Q4_K","shape":[4],"data_offsets":[0,6]}}"#;
        let p = problem(read(&file(h, 8)));
        assert!(p.contains("`a` has dtype `Q4_K`") && p.contains("BF16"), "{p}");
    }

    #[test]
    fn overflowing_shapes_are_errors() {
        let h = r#"{"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#;
        assert!(problem(read(&file(h, 8))).contains("overflows"));
        let h = r#"{"a":{"dtype":"F64","shape":[4294967295,536870912],"data_offsets":[0,8]}}"#;
        assert!(problem(read(&file(h, 8))).contains("overflows"));
    }

    #[test]
    fn overlapping_tensors_are_refused() {
        let h = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
        assert!(problem(read(&file(h, 12))).contains("`a` and `b` overlap"));
    }

    #[test]
    fn sub_byte_dtypes_round_up() {
        let h = r#"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#;
        assert_eq!(read(&file(h, 2)).unwrap()[0].bytes, 2);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = read(&bytes);
        }

        #[test]
        fn random_header_text_never_panics(header in ".{0,200}", data in 0usize..64) {
            let _ = read(&file(&header, data));
        }

        #[test]
        fn mutated_good_files_never_panic(pos in 0usize..200, byte in any::<u8>(), cut in 0usize..220) {
            let mut f = file(GOOD, 16);
            let p = pos % f.len();
            f[p] = byte;
            f.truncate(cut.min(f.len()));
            let _ = read(&f);
        }
    }
}
