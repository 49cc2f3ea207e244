//! A GGUF (v2, v3) reader for the header, the metadata and the tensor infos; tensor data is never read.
//!
//! Every count and length in the file is checked against the bytes left before anything is read or
//! allocated, so hostile or cut-off files end in an error that says where, never in a panic or a huge
//! allocation.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};

use crate::error::{Bad, HINT_REDOWNLOAD, HINT_UPDATE};
use crate::ggml::GgmlType;

/// Metadata values this reader keeps; long strings and big arrays (the vocabulary) are skipped.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    U(u64),
    I(i64),
    F(f64),
    Bool(bool),
    Str(String),
    Arr(Vec<Value>),
    Skipped,
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U(v) => Some(v),
            Value::I(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Totals of the tensors of one GGML type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TypeTotal {
    pub tensors: u64,
    pub elements: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Gguf {
    pub version: u32,
    pub kv: BTreeMap<String, Value>,
    /// Per GGML type name.
    pub types: BTreeMap<&'static str, TypeTotal>,
    pub tensor_count: u64,
}

const MAGIC: &[u8; 4] = b"GGUF";
const MAX_KEY: u64 = 65_535;
const MAX_KEPT_STRING: u64 = 4096;
const MAX_KEPT_ARRAY: u64 = 4096;
const MAX_NESTING: u32 = 4;
const MAX_DIMS: u32 = 4;
const DEFAULT_ALIGNMENT: u64 = 32;

struct Rd<R> {
    r: R,
    pos: u64,
    len: u64,
}

impl<R: Read + Seek> Rd<R> {
    fn left(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn need(&self, n: u64, what: &dyn Fn() -> String) -> Result<(), Bad> {
        if n > self.left() {
            return Err(Bad::invalid(
                format!(
                    "the file ends at byte {} but {} needs {n} bytes from byte {}",
                    self.len,
                    what(),
                    self.pos
                ),
                HINT_REDOWNLOAD,
            ));
        }
        Ok(())
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], Bad> {
        self.need(N as u64, what)?;
        let mut b = [0u8; N];
        self.r.read_exact(&mut b)?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, Bad> {
        self.array::<4>(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, Bad> {
        self.array::<8>(what).map(u64::from_le_bytes)
    }

    fn skip(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<(), Bad> {
        self.need(n, what)?;
        let step = i64::try_from(n).map_err(|_| Bad::corrupt(format!("{} is too long", what())))?;
        self.r.seek(SeekFrom::Current(step))?;
        self.pos += n;
        Ok(())
    }

    /// A string: its length, then (when kept) its bytes; `None` when longer than `keep_max`.
    fn string(&mut self, keep_max: u64, what: &dyn Fn() -> String) -> Result<Option<String>, Bad> {
        let n = self.u64(what)?;
        self.need(n, what)?;
        if n > keep_max {
            self.skip(n, what)?;
            return Ok(None);
        }
        // n is at most keep_max here, so the buffer is small.
        let mut b = vec![0u8; n as usize];
        self.r.read_exact(&mut b)?;
        self.pos += n;
        Ok(Some(String::from_utf8_lossy(&b).into_owned()))
    }

    /// Checks that `count` items of at least `min` bytes each can fit in what is left.
    fn need_items(&mut self, count: u64, min: u64, what: &dyn Fn() -> String) -> Result<(), Bad> {
        match count.checked_mul(min) {
            Some(n) if n <= self.left() => Ok(()),
            _ => Err(Bad::corrupt(format!(
                "{} claims {count} items, more than the {} bytes left in the file can hold",
                what(),
                self.left()
            ))),
        }
    }
}

/// Size of a fixed-size GGUF value type; `None` for strings and arrays.
fn fixed_size(ty: u32) -> Option<u64> {
    match ty {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

fn read_value<R: Read + Seek>(rd: &mut Rd<R>, ty: u32, depth: u32, what: &dyn Fn() -> String) -> Result<Value, Bad> {
    Ok(match ty {
        0 => Value::U(u64::from(rd.array::<1>(what)?[0])),
        1 => Value::I(i64::from(i8::from_le_bytes(rd.array::<1>(what)?))),
        2 => Value::U(u64::from(u16::from_le_bytes(rd.array::<2>(what)?))),
        3 => Value::I(i64::from(i16::from_le_bytes(rd.array::<2>(what)?))),
        4 => Value::U(u64::from(rd.u32(what)?)),
        5 => Value::I(i64::from(i32::from_le_bytes(rd.array::<4>(what)?))),
        6 => Value::F(f64::from(f32::from_le_bytes(rd.array::<4>(what)?))),
        7 => Value::Bool(rd.array::<1>(what)?[0] != 0),
        8 => rd.string(MAX_KEPT_STRING, what)?.map_or(Value::Skipped, Value::Str),
        9 => read_array(rd, depth, what)?,
        10 => Value::U(rd.u64(what)?),
        11 => Value::I(i64::from_le_bytes(rd.array::<8>(what)?)),
        12 => Value::F(f64::from_le_bytes(rd.array::<8>(what)?)),
        other => {
            return Err(Bad::invalid(
                format!("{} has value type {other}, which GGUF does not define", what()),
                HINT_REDOWNLOAD,
            ));
        }
    })
}

fn read_array<R: Read + Seek>(rd: &mut Rd<R>, depth: u32, what: &dyn Fn() -> String) -> Result<Value, Bad> {
    if depth >= MAX_NESTING {
        return Err(Bad::corrupt(format!(
            "{} nests arrays deeper than {MAX_NESTING} levels",
            what()
        )));
    }
    let elem = rd.u32(what)?;
    let count = rd.u64(what)?;
    match fixed_size(elem) {
        Some(size) => {
            rd.need_items(count, size, what)?;
            if count > MAX_KEPT_ARRAY {
                rd.skip(count * size, what)?;
                return Ok(Value::Skipped);
            }
            let mut items = Vec::with_capacity(count as usize);
            for _ in 0..count {
                items.push(read_value(rd, elem, depth + 1, what)?);
            }
            Ok(Value::Arr(items))
        }
        None => {
            // A string is at least its 8-byte length; an array at least its type and count.
            let min = if elem == 9 { 12 } else { 8 };
            rd.need_items(count, min, what)?;
            for _ in 0..count {
                match elem {
                    8 => {
                        let n = rd.u64(what)?;
                        rd.skip(n, what)?;
                    }
                    _ => {
                        read_value(rd, elem, depth + 1, what)?;
                    }
                }
            }
            Ok(Value::Skipped)
        }
    }
}

/// Reads the GGUF header of a file of `len` bytes from `r`, positioned at its start.
pub(crate) fn read<R: Read + Seek>(r: R, len: u64) -> Result<Gguf, Bad> {
    let mut rd = Rd { r, pos: 0, len };
    let magic = rd.array::<4>(&|| "the GGUF magic".to_string())?;
    if &magic != MAGIC {
        return Err(Bad::invalid(
            format!("the file starts with {magic:02x?}, not the GGUF magic `GGUF`"),
            "pass a .gguf file, or a folder with config.json and *.safetensors",
        ));
    }
    let version = rd.u32(&|| "the GGUF version".to_string())?;
    match version {
        2 | 3 => {}
        1 => {
            return Err(Bad::invalid(
                "GGUF version 1 (2023) is not supported",
                "convert the model again with a current llama.cpp",
            ));
        }
        v if (1..=3).contains(&v.swap_bytes()) => {
            return Err(Bad::invalid(
                "this is a big-endian GGUF, which this tool does not read",
                "use the little-endian file llama.cpp's converter writes by default",
            ));
        }
        v => {
            return Err(Bad::invalid(
                format!("GGUF version {v} is newer than the versions this tool reads (2, 3)"),
                HINT_UPDATE,
            ));
        }
    }
    let tensor_count = rd.u64(&|| "the tensor count".to_string())?;
    let kv_count = rd.u64(&|| "the metadata count".to_string())?;
    // Smallest entry: empty key (8) + type (4) + a 1-byte value; smallest tensor info: empty name
    // (8) + no dims (4) + type (4) + offset (8).
    rd.need_items(kv_count, 13, &|| "the metadata section".to_string())?;
    rd.need_items(tensor_count, 24, &|| "the tensor info section".to_string())?;

    let mut kv = BTreeMap::new();
    for i in 0..kv_count {
        let key = rd
            .string(MAX_KEY, &|| format!("metadata key {i}"))?
            .ok_or_else(|| Bad::corrupt(format!("metadata key {i} is longer than {MAX_KEY} bytes")))?;
        let what = || format!("metadata `{key}`");
        let ty = rd.u32(&what)?;
        let value = read_value(&mut rd, ty, 0, &what)?;
        if kv.insert(key.clone(), value).is_some() {
            return Err(Bad::corrupt(format!("metadata key `{key}` appears twice")));
        }
    }

    let alignment = match kv.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_u64() {
            Some(a) if a.is_power_of_two() => a,
            _ => return Err(Bad::corrupt(format!("general.alignment {v:?} is not a power of two"))),
        },
    };

    let mut types: BTreeMap<&'static str, TypeTotal> = BTreeMap::new();
    let mut data_needed = 0u64;
    for i in 0..tensor_count {
        let name = rd
            .string(MAX_KEY, &|| format!("tensor info {i}"))?
            .ok_or_else(|| Bad::corrupt(format!("tensor {i}'s name is longer than {MAX_KEY} bytes")))?;
        let what = || format!("tensor `{name}`");
        let (ty, elements, bytes) = read_tensor_info(&mut rd, &name, &what)?;
        let offset = rd.u64(&what)?;
        if !offset.is_multiple_of(alignment) {
            return Err(Bad::corrupt(format!(
                "tensor `{name}` starts at offset {offset}, not a multiple of the alignment {alignment}"
            )));
        }
        let end = offset
            .checked_add(bytes)
            .ok_or_else(|| Bad::corrupt(format!("tensor `{name}`'s offset and size overflow")))?;
        data_needed = data_needed.max(end);
        let total = types.entry(ty.name).or_default();
        total.tensors += 1;
        total.elements = total
            .elements
            .checked_add(elements)
            .ok_or_else(|| Bad::corrupt("the total element count overflows 64 bits"))?;
        total.bytes = total
            .bytes
            .checked_add(bytes)
            .ok_or_else(|| Bad::corrupt("the total byte count overflows 64 bits"))?;
    }

    let data_start = rd.pos.div_ceil(alignment).saturating_mul(alignment);
    match data_start.checked_add(data_needed) {
        Some(end) if end <= len => {}
        _ => {
            return Err(Bad::invalid(
                format!(
                    "the tensor data needs {data_needed} bytes from byte {data_start}, but the file is {len} bytes"
                ),
                HINT_REDOWNLOAD,
            ));
        }
    }
    Ok(Gguf {
        version,
        kv,
        types,
        tensor_count,
    })
}

fn read_tensor_info<R: Read + Seek>(
    rd: &mut Rd<R>,
    name: &str,
    what: &dyn Fn() -> String,
) -> Result<(GgmlType, u64, u64), Bad> {
    let n_dims = rd.u32(what)?;
    if n_dims > MAX_DIMS {
        return Err(Bad::corrupt(format!(
            "tensor `{name}` has {n_dims} dimensions; GGUF allows at most {MAX_DIMS}"
        )));
    }
    let mut elements = 1u64;
    let mut first = 1u64;
    for d in 0..n_dims {
        let dim = rd.u64(what)?;
        if d == 0 {
            first = dim;
        }
        elements = elements
            .checked_mul(dim)
            .ok_or_else(|| Bad::corrupt(format!("tensor `{name}`'s element count overflows 64 bits")))?;
    }
    let type_id = rd.u32(what)?;
    let ty = GgmlType::find(type_id).ok_or_else(|| {
        Bad::invalid(
            format!(
                "tensor `{name}` has GGML type {type_id}, which this tool does not know (it knows {})",
                GgmlType::known_names()
            ),
            HINT_UPDATE,
        )
    })?;
    // ggml quantises along the first dimension: rows must hold whole blocks.
    if !first.is_multiple_of(ty.block) {
        return Err(Bad::corrupt(format!(
            "tensor `{name}` of type {} has rows of {first} elements, not a multiple of its block of {}",
            ty.name, ty.block
        )));
    }
    let bytes = (elements / ty.block)
        .checked_mul(ty.block_bytes)
        .ok_or_else(|| Bad::corrupt(format!("tensor `{name}`'s byte size overflows 64 bits")))?;
    Ok((ty, elements, bytes))
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use proptest::prelude::*;

    use super::*;
    use crate::fixtures::{self, GgufWriter, Q4_K};

    fn parse(bytes: &[u8]) -> Result<Gguf, Bad> {
        read(Cursor::new(bytes), bytes.len() as u64)
    }

    fn problem(r: Result<Gguf, Bad>) -> String {
        match r {
            Err(Bad::Invalid { problem, .. }) => problem,
            other => panic!("expected a complaint, got {other:?}"),
        }
    }

    #[test]
    fn reads_metadata_and_tensor_totals() {
        let g = parse(&fixtures::tiny_gguf().bytes()).unwrap();
        assert_eq!(g.version, 3);
        assert_eq!(g.kv["general.architecture"], Value::Str("llama".into()));
        assert_eq!(g.kv["llama.block_count"].as_u64(), Some(2));
        assert_eq!(g.kv["llama.rope.freq_base"], Value::F(10000.0));
        assert_eq!(g.kv["tokenizer.ggml.add_bos_token"], Value::Bool(false));
        assert_eq!(g.kv["tokenizer.ggml.tokens"], Value::Skipped);
        assert_eq!(
            g.kv["tokenizer.ggml.token_type"],
            Value::Arr(vec![Value::U(1), Value::U(1), Value::U(3)])
        );
        assert_eq!(g.tensor_count, 21);
        assert_eq!(g.types["Q4_K"].tensors, 10);
        assert_eq!(g.types["F32"].elements, 5 * 256);
        let elements: u64 = g.types.values().map(|t| t.elements).sum();
        let bytes: u64 = g.types.values().map(|t| t.bytes).sum();
        assert_eq!(
            (elements, bytes),
            (fixtures::TINY_GGUF_PARAMS, fixtures::TINY_GGUF_BYTES)
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = fixtures::tiny_gguf().bytes();
        // Every cut through the header and metadata, then a few through the data.
        let cuts = (0..2048).chain((2048..bytes.len()).step_by(997));
        for cut in cuts {
            let p = problem(parse(&bytes[..cut]));
            assert!(
                p.contains("the file ends") || p.contains("needs") || p.contains("claims"),
                "{cut}: {p}"
            );
        }
    }

    #[test]
    fn huge_counts_are_refused_before_reading() {
        let mut b = b"GGUF".to_vec();
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&u64::MAX.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        assert!(problem(parse(&b)).contains("claims 18446744073709551615 items"));
        let mut w = GgufWriter::default();
        w.string_array("a", &[]);
        let mut b = w.bytes();
        // The array count sits after magic, version, counts, key and element type.
        let at = 4 + 4 + 8 + 8 + 8 + 1 + 4 + 4;
        b[at..at + 8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
        assert!(problem(parse(&b)).contains("claims"));
    }

    #[test]
    fn versions_and_magic() {
        let mut w = GgufWriter::default();
        w.version = 1;
        assert!(problem(parse(&w.bytes())).contains("version 1"));
        w.version = 3u32.swap_bytes();
        assert!(problem(parse(&w.bytes())).contains("big-endian"));
        w.version = 9;
        assert!(problem(parse(&w.bytes())).contains("version 9"));
        w.version = 2;
        assert!(parse(&w.bytes()).is_ok());
        assert!(problem(parse(b"GGML\x03\0\0\0")).contains("not the GGUF magic"));
    }

    #[test]
    fn unknown_and_misaligned_tensors() {
        let mut w = GgufWriter::default();
        w.tensor("x", &[256], (77, 1, 1));
        assert!(problem(parse(&w.bytes())).contains("GGML type 77"));
        let mut w = GgufWriter::default();
        w.tensor("x", &[100], Q4_K);
        assert!(problem(parse(&w.bytes())).contains("not a multiple of its block"));
        let mut w = GgufWriter::default();
        w.u32("general.alignment", 48);
        assert!(problem(parse(&w.bytes())).contains("power of two"));
        let mut w = GgufWriter::default();
        w.tensor("x", &[1, 2, 3, 4, 5], fixtures::F32);
        assert!(problem(parse(&w.bytes())).contains("5 dimensions"));
    }

    #[test]
    fn overflowing_shapes_are_errors() {
        let mut w = GgufWriter::default();
        w.tensor("x", &[u64::MAX, 2], fixtures::F32);
        let b = w.bytes();
        assert!(problem(parse(&b)).contains("overflows"));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut w = GgufWriter::default();
        w.string("k", "");
        let mut b = w.bytes();
        // Rewrite the value as arrays of arrays, each holding one, deeper than allowed.
        b.truncate(4 + 4 + 8 + 8 + 8 + 1);
        b.extend_from_slice(&9u32.to_le_bytes());
        for _ in 0..10 {
            b.extend_from_slice(&9u32.to_le_bytes());
            b.extend_from_slice(&1u64.to_le_bytes());
        }
        b.resize(b.len() + 64, 0);
        assert!(problem(parse(&b)).contains("nests arrays"));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&tail);
            let mut b = b"GGUF\x03\0\0\0".to_vec();
            b.extend_from_slice(&tail);
            let _ = parse(&b);
        }

        #[test]
        fn mutated_good_files_never_panic(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let mut b = fixtures::tiny_gguf().bytes();
            // Mutations in the header and metadata matter; the zeroed data does not.
            let header = 2048.min(b.len());
            for (pos, byte) in edits {
                b[pos % header] = byte;
            }
            b.truncate(cut % (b.len() + 1));
            let _ = parse(&b);
        }
    }
}
