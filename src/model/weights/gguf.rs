//! GGUF, llama.cpp's single-file format: metadata (hyperparameters, the
//! tokenizer, the chat template) and tensors, some quantized in blocks of
//! 32. Reading dequantizes to fp32 as gguf-py does, bit for bit; writing
//! stores F32, F16 or Q8_0.
//!
//! Tensor dimensions are stored innermost first (`[576, 49152]` for a
//! `[49152, 576]` embedding); `shape()` gives them in PyTorch order.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use half::{bf16, f16};
use tch::{Kind, Tensor};

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// Elements per quantization block (Q4_0, Q4_1, Q8_0).
const BLOCK: usize = 32;

/// A tensor's storage type, by its ggml id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
    /// bfloat16.
    Bf16,
    /// Blocks of `[f16 scale][16 bytes of 4-bit values]`, value `d * (q - 8)`.
    Q4_0,
    /// Blocks of `[f16 scale][f16 min][16 bytes]`, value `d * q + m`.
    Q4_1,
    /// Blocks of `[f16 scale][32 x i8]`, value `d * q`.
    Q8_0,
}

/// The types this reader dequantizes, as gguf-py names them.
pub const SUPPORTED_TYPES: &str = "F32, F16, BF16, Q8_0, Q4_0, Q4_1";

impl GgmlType {
    fn from_id(id: u32) -> Result<Self> {
        Ok(match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            8 => Self::Q8_0,
            30 => Self::Bf16,
            other => bail!("tensor type {} is not supported; this reader handles {SUPPORTED_TYPES} (re-quantize the file, e.g. with llama.cpp's llama-quantize to Q8_0)", ggml_type_name(other)),
        })
    }

    fn id(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q8_0 => 8,
            Self::Bf16 => 30,
        }
    }

    /// The name gguf-py and llama.cpp use.
    pub fn name(self) -> &'static str {
        ggml_type_name(self.id())
    }

    /// Bytes for `n` elements.
    fn bytes(self, n: usize) -> usize {
        match self {
            Self::F32 => 4 * n,
            Self::F16 | Self::Bf16 => 2 * n,
            Self::Q4_0 => n / BLOCK * 18,
            Self::Q4_1 => n / BLOCK * 20,
            Self::Q8_0 => n / BLOCK * 34,
        }
    }

    fn is_blocked(self) -> bool {
        matches!(self, Self::Q4_0 | Self::Q4_1 | Self::Q8_0)
    }
}

/// ggml's name for a type id (`Q4_K` for 12), for messages.
fn ggml_type_name(id: u32) -> &'static str {
    const NAMES: &[&str] = &[
        "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS",
        "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16",
    ];
    NAMES.get(id as usize).copied().unwrap_or("unknown")
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Any unsigned or signed integer type, widened.
    Int(i64),
    /// f32 or f64.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A UTF-8 string.
    Str(String),
    /// An array of values of one type.
    Array(Vec<Value>),
}

impl Value {
    /// The value as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }
    /// The value as an integer, if it is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }
    /// The value as a float (integers convert).
    pub fn as_float(&self) -> Option<f64> {
        match self {
            Self::Float(f) => Some(*f),
            Self::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}

/// One tensor's entry in the file's table.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// llama.cpp's name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions, innermost first, as stored.
    pub dims: Vec<u64>,
    /// Storage type.
    pub kind: GgmlType,
    offset: u64,
}

impl TensorInfo {
    /// The shape in PyTorch order (outermost first).
    pub fn shape(&self) -> Vec<i64> {
        self.dims.iter().rev().map(|&d| d as i64).collect()
    }
    fn numel(&self) -> usize {
        self.dims.iter().product::<u64>() as usize
    }
}

/// A GGUF file read into memory.
pub struct GgufFile {
    /// Format version (2 or 3).
    pub version: u32,
    /// Every metadata key, sorted.
    pub metadata: BTreeMap<String, Value>,
    /// The tensor table, in file order.
    pub tensors: Vec<TensorInfo>,
    bytes: Vec<u8>,
    data_start: usize,
}

/// A cursor over the file's bytes whose errors say where the file ended.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.pos + n > self.bytes.len() {
            bail!("the file is truncated: it ends at byte {} while its header needs {} more bytes at byte {}", self.bytes.len(), n, self.pos);
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn string(&mut self) -> Result<String> {
        let n = self.u64()? as usize;
        let raw = self.take(n)?;
        String::from_utf8(raw.to_vec()).with_context(|| format!("a string at byte {} is not UTF-8", self.pos - n))
    }
    fn value(&mut self, kind: u32) -> Result<Value> {
        let b = |r: &mut Self, n| r.take(n);
        Ok(match kind {
            0 => Value::Int(b(self, 1)?[0] as i64),
            1 => Value::Int(b(self, 1)?[0] as i8 as i64),
            2 => Value::Int(u16::from_le_bytes(b(self, 2)?.try_into().unwrap()) as i64),
            3 => Value::Int(i16::from_le_bytes(b(self, 2)?.try_into().unwrap()) as i64),
            4 => Value::Int(self.u32()? as i64),
            5 => Value::Int(self.u32()? as i32 as i64),
            6 => Value::Float(f32::from_le_bytes(b(self, 4)?.try_into().unwrap()) as f64),
            7 => Value::Bool(b(self, 1)?[0] != 0),
            8 => Value::Str(self.string()?),
            9 => {
                let inner = self.u32()?;
                let n = self.u64()? as usize;
                if n > self.bytes.len() {
                    bail!("an array at byte {} claims {n} elements, more than the file holds", self.pos);
                }
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(inner)?);
                }
                Value::Array(items)
            }
            10 => Value::Int(self.u64()? as i64),
            11 => Value::Int(self.u64()? as i64),
            12 => Value::Float(f64::from_le_bytes(b(self, 8)?.try_into().unwrap())),
            other => bail!("unknown metadata value type {other} at byte {}", self.pos),
        })
    }
}

impl GgufFile {
    /// Reads and checks a GGUF file: its header, metadata and tensor table,
    /// and that every tensor's data lies inside the file.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(bytes).with_context(|| format!("{} is not a GGUF file Tunebook can read", path.display()))
    }

    fn parse(bytes: Vec<u8>) -> Result<Self> {
        if bytes.len() < 4 || &bytes[..4] != MAGIC {
            bail!("it does not start with the GGUF magic bytes");
        }
        let mut r = Reader { bytes: &bytes, pos: 4 };
        let version = r.u32()?;
        if !(2..=3).contains(&version) {
            bail!("GGUF version {version} is not supported (versions 2 and 3 are)");
        }
        let n_tensors = r.u64()?;
        let n_kv = r.u64()?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = r.string()?;
            let kind = r.u32()?;
            let value = r.value(kind).with_context(|| format!("metadata '{key}'"))?;
            metadata.insert(key, value);
        }
        let mut tensors = Vec::new();
        for _ in 0..n_tensors {
            let name = r.string()?;
            let n_dims = r.u32()?;
            let dims = (0..n_dims).map(|_| r.u64()).collect::<Result<Vec<_>>>()?;
            let kind = GgmlType::from_id(r.u32()?).with_context(|| format!("tensor {name}"))?;
            let offset = r.u64()?;
            let info = TensorInfo { name, dims, kind, offset };
            if kind.is_blocked() && info.dims.first().is_some_and(|d| *d as usize % BLOCK != 0) {
                bail!("tensor {}: rows of {} elements do not split into blocks of {BLOCK}", info.name, info.dims[0]);
            }
            tensors.push(info);
        }
        let alignment = metadata.get("general.alignment").and_then(Value::as_int).map(|a| a as u64).unwrap_or(DEFAULT_ALIGNMENT);
        let data_start = (r.pos as u64).div_ceil(alignment) * alignment;
        let file = Self { version, metadata, tensors, data_start: data_start as usize, bytes };
        for t in &file.tensors {
            let end = file.data_start + t.offset as usize + t.kind.bytes(t.numel());
            if end > file.bytes.len() {
                bail!("the file is truncated: tensor {} ends at byte {end}, but the file has {} bytes", t.name, file.bytes.len());
            }
        }
        Ok(file)
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    /// A metadata string; an error names the missing key.
    pub fn string(&self, key: &str) -> Result<&str> {
        self.get(key).and_then(Value::as_str).with_context(|| format!("the GGUF has no string '{key}'"))
    }

    /// A metadata integer; an error names the missing key.
    pub fn int(&self, key: &str) -> Result<i64> {
        self.get(key).and_then(Value::as_int).with_context(|| format!("the GGUF has no integer '{key}'"))
    }

    /// A metadata array of strings.
    pub fn strings(&self, key: &str) -> Result<Vec<&str>> {
        match self.get(key) {
            Some(Value::Array(items)) => items.iter().map(|v| v.as_str().with_context(|| format!("'{key}' holds a non-string"))).collect(),
            _ => bail!("the GGUF has no string array '{key}'"),
        }
    }

    /// The tensor's values as an fp32 tensor in PyTorch's shape.
    pub fn tensor(&self, info: &TensorInfo) -> Tensor {
        let start = self.data_start + info.offset as usize;
        let raw = &self.bytes[start..start + info.kind.bytes(info.numel())];
        let values = dequantize(raw, info.kind);
        Tensor::from_slice(&values).view(info.shape().as_slice())
    }

    /// Every tensor, dequantized, by llama.cpp name.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.tensors.iter().map(|t| (t.name.clone(), self.tensor(t))).collect()
    }
}

/// Dequantizes `raw` to fp32 the way gguf-py's `quants.dequantize` does
/// (the scale converted from f16 to f32 first, then `d * q (+ m)` in f32).
fn dequantize(raw: &[u8], kind: GgmlType) -> Vec<f32> {
    let half = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]).to_f32();
    match kind {
        GgmlType::F32 => raw.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect(),
        GgmlType::F16 => raw.chunks_exact(2).map(half).collect(),
        GgmlType::Bf16 => raw.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        GgmlType::Q8_0 => raw
            .chunks_exact(34)
            .flat_map(|b| {
                let d = half(&b[..2]);
                b[2..].iter().map(move |&q| d * (q as i8) as f32)
            })
            .collect(),
        GgmlType::Q4_0 | GgmlType::Q4_1 => {
            let (size, has_min) = if kind == GgmlType::Q4_0 { (18, false) } else { (20, true) };
            let mut out = Vec::with_capacity(raw.len() / size * BLOCK);
            for b in raw.chunks_exact(size) {
                let d = half(&b[..2]);
                let (m, qs) = if has_min { (half(&b[2..4]), &b[4..]) } else { (0.0, &b[2..]) };
                let nibbles = qs.iter().map(|q| q & 0x0F).chain(qs.iter().map(|q| q >> 4));
                if has_min {
                    out.extend(nibbles.map(|q| d * q as f32 + m));
                } else {
                    out.extend(nibbles.map(|q| d * (q as i8 - 8) as f32));
                }
            }
            out
        }
    }
}

/// How `write` stores the weight matrices (vectors such as norms stay F32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveType {
    /// 32-bit floats: exact.
    F32,
    /// 16-bit floats (the default: half the size, error about 1e-3 relative).
    F16,
    /// 8-bit blocks with an f16 scale (a quarter of F32).
    Q8_0,
}

impl SaveType {
    /// Names scripts use.
    pub const NAMES: &'static [&'static str] = &["f32", "f16", "q8_0"];

    /// Parses a script name (`"q8_0"`).
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(Self::F32),
            "f16" => Ok(Self::F16),
            "q8_0" => Ok(Self::Q8_0),
            _ => bail!("cannot write GGUF tensors as '{s}'; valid: {}", Self::NAMES.join(", ")),
        }
    }

    fn ggml(self) -> GgmlType {
        match self {
            Self::F32 => GgmlType::F32,
            Self::F16 => GgmlType::F16,
            Self::Q8_0 => GgmlType::Q8_0,
        }
    }

    /// gguf's `general.file_type` (llama.cpp's `LLAMA_FTYPE_*`).
    fn file_type(self) -> i64 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q8_0 => 7,
        }
    }
}

/// Quantizes fp32 values to Q8_0 blocks as gguf-py does: `d = max|x| / 127`,
/// `q = round(x / d)` with halves away from zero.
fn quantize_q8_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / BLOCK * 34);
    for block in values.chunks_exact(BLOCK) {
        let d = block.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0;
        let inv = if d == 0.0 { 0.0 } else { 1.0 / d };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|x| (x * inv).round() as i8 as u8));
    }
    out
}

/// Writes a GGUF v3 file with `metadata` and `tensors` (fp32 tensors in
/// PyTorch shape, llama.cpp names): 2-D tensors whose rows split into
/// blocks are stored as `matrices`, everything else as F32. The file is
/// written to a temporary name and renamed into place.
pub fn write(path: &Path, metadata: &BTreeMap<String, Value>, tensors: &[(String, Tensor)], matrices: SaveType) -> Result<()> {
    let mut metadata = metadata.clone();
    metadata.insert("general.file_type".into(), Value::Int(matrices.file_type()));
    metadata.insert("general.alignment".into(), Value::Int(DEFAULT_ALIGNMENT as i64));
    let mut header = Vec::new();
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&3u32.to_le_bytes());
    header.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    header.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (key, value) in &metadata {
        put_string(&mut header, key);
        put_value(&mut header, value, true);
    }
    let mut data: Vec<u8> = Vec::new();
    for (name, t) in tensors {
        let shape = t.size();
        let row = *shape.last().unwrap_or(&1) as usize;
        let kind = if shape.len() == 2 && row % BLOCK == 0 { matrices.ggml() } else { GgmlType::F32 };
        let values: Vec<f32> = Vec::try_from(t.to_kind(Kind::Float).contiguous().view(-1)).context("reading a tensor to save")?;
        let bytes: Vec<u8> = match kind {
            GgmlType::F32 => values.iter().flat_map(|x| x.to_le_bytes()).collect(),
            GgmlType::F16 => values.iter().flat_map(|x| f16::from_f32(*x).to_le_bytes()).collect(),
            GgmlType::Q8_0 => quantize_q8_0(&values),
            _ => unreachable!("the writer stores F32, F16 and Q8_0"),
        };
        while data.len() % DEFAULT_ALIGNMENT as usize != 0 {
            data.push(0);
        }
        put_string(&mut header, name);
        header.extend_from_slice(&(shape.len() as u32).to_le_bytes());
        for d in shape.iter().rev() {
            header.extend_from_slice(&(*d as u64).to_le_bytes());
        }
        header.extend_from_slice(&kind.id().to_le_bytes());
        header.extend_from_slice(&(data.len() as u64).to_le_bytes());
        data.extend_from_slice(&bytes);
    }
    while header.len() % DEFAULT_ALIGNMENT as usize != 0 {
        header.push(0);
    }
    header.extend_from_slice(&data);
    crate::files::write_file(path, &header)
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Writes a value with its type tag (`tagged`), or only its payload (array items).
fn put_value(out: &mut Vec<u8>, value: &Value, tagged: bool) {
    let (tag, payload): (u32, Vec<u8>) = match value {
        // Integers go back as u32 when they fit (llama.cpp reads counts as
        // u32), else as i64.
        Value::Int(i) if (0..=u32::MAX as i64).contains(i) => (4, (*i as u32).to_le_bytes().to_vec()),
        Value::Int(i) => (11, i.to_le_bytes().to_vec()),
        Value::Float(f) => (6, (*f as f32).to_le_bytes().to_vec()),
        Value::Bool(b) => (7, vec![*b as u8]),
        Value::Str(s) => {
            let mut p = Vec::new();
            put_string(&mut p, s);
            (8, p)
        }
        Value::Array(items) => {
            let mut p = Vec::new();
            let inner = items.first().map(tag_of).unwrap_or(8);
            p.extend_from_slice(&inner.to_le_bytes());
            p.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                put_value(&mut p, item, false);
            }
            (9, p)
        }
    };
    if tagged {
        out.extend_from_slice(&tag.to_le_bytes());
    }
    out.extend_from_slice(&payload);
}

fn tag_of(v: &Value) -> u32 {
    match v {
        Value::Int(i) if (0..=u32::MAX as i64).contains(i) => 4,
        Value::Int(_) => 11,
        Value::Float(_) => 6,
        Value::Bool(_) => 7,
        Value::Str(_) => 8,
        Value::Array(_) => 9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_round_trips_within_half_a_step() {
        let values: Vec<f32> = (0..64).map(|i| ((i as f32) * 0.37).sin() * 3.0).collect();
        let back = dequantize(&quantize_q8_0(&values), GgmlType::Q8_0);
        let step = 3.0 / 127.0;
        for (a, b) in values.iter().zip(&back) {
            assert!((a - b).abs() <= step * 0.51 + 1e-3, "{a} vs {b}");
        }
    }

    #[test]
    fn q4_1_nibbles_low_first() {
        let mut block = Vec::new();
        block.extend_from_slice(&f16::from_f32(0.5).to_le_bytes());
        block.extend_from_slice(&f16::from_f32(-1.0).to_le_bytes());
        block.extend((0..16u8).map(|i| i | ((15 - i) << 4)));
        let v = dequantize(&block, GgmlType::Q4_1);
        assert_eq!(v[0], -1.0);
        assert_eq!(v[15], 0.5 * 15.0 - 1.0);
        assert_eq!(v[16], 0.5 * 15.0 - 1.0);
        assert_eq!(v[31], -1.0);
    }

    #[test]
    fn a_truncated_file_says_so() {
        let mut bytes = b"GGUF".to_vec();
        bytes.extend_from_slice(&3u32.to_le_bytes());
        bytes.extend_from_slice(&1u64.to_le_bytes());
        let err = GgufFile::parse(bytes).err().unwrap().to_string();
        assert!(err.contains("truncated"), "{err}");
    }
}
