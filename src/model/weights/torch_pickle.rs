//! Reading what `torch.save` writes: the zip archive of torch 1.6 and later
//! (`pytorch_model.bin`), holding a pickled state dict whose tensors point
//! at raw storages, and the legacy format before it (torchvision's and most
//! older `.pth` files): a run of pickles (a magic number, the protocol
//! version, system information, the state dict, the storage keys) followed
//! by each storage as an int64 element count and its bytes.
//!
//! tch only reads TorchScript archives, so this is a small unpickler for the
//! opcodes `torch.save` emits (protocol 2), with no code execution: the only
//! globals it acts on are the tensor rebuilders and `OrderedDict`.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use tch::{Kind, Tensor};

/// A pickled value, as far as a state dict needs.
#[derive(Debug, Clone)]
enum Value {
    None,
    /// An integer wider than 64 bits (the legacy format's magic number), as its little-endian bytes.
    BigInt(Vec<u8>),
    /// A bool or float: parsed, never needed by a state dict.
    OtherScalar,
    Int(i64),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String, String),
    /// A persistent id: torch's reference to a storage.
    Storage { kind: Kind, key: String },
    Tensor(usize),
    Mark,
}

struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
    tensors: Vec<TensorRef>,
}

/// A tensor's view of a storage.
struct TensorRef {
    kind: Kind,
    key: String,
    offset: i64,
    size: Vec<i64>,
    stride: Vec<i64>,
}

fn storage_kind(name: &str) -> Result<Kind> {
    Ok(match name {
        "FloatStorage" => Kind::Float,
        "DoubleStorage" => Kind::Double,
        "HalfStorage" => Kind::Half,
        "BFloat16Storage" => Kind::BFloat16,
        "LongStorage" => Kind::Int64,
        "IntStorage" => Kind::Int,
        "ShortStorage" => Kind::Int16,
        "CharStorage" => Kind::Int8,
        "ByteStorage" => Kind::Uint8,
        "BoolStorage" => Kind::Bool,
        other => bail!("unsupported storage type torch.{other}"),
    })
}

impl<'a> Unpickler<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or_else(|| anyhow!("the pickle ends early"))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }
    fn line(&mut self) -> Result<String> {
        let rest = &self.data[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or_else(|| anyhow!("unterminated line in the pickle"))?;
        let s = String::from_utf8(rest[..n].to_vec())?;
        self.pos += n + 1;
        Ok(s)
    }
    fn pop(&mut self) -> Result<Value> {
        self.stack.pop().ok_or_else(|| anyhow!("the pickle's stack is empty"))
    }
    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let at = self.stack.iter().rposition(|v| matches!(v, Value::Mark)).ok_or_else(|| anyhow!("no mark on the pickle's stack"))?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }
    fn top(&mut self) -> Result<&mut Value> {
        self.stack.last_mut().ok_or_else(|| anyhow!("the pickle's stack is empty"))
    }

    /// An unpickler of the pickle that starts at byte `pos` of `data`.
    fn at(data: &'a [u8], pos: usize) -> Self {
        Unpickler { data, pos, stack: Vec::new(), memo: HashMap::new(), tensors: Vec::new() }
    }

    /// Runs the pickle's opcodes to its STOP; returns the value, the
    /// tensors it rebuilt and the byte after the STOP.
    fn run(mut self) -> Result<(Value, Vec<TensorRef>, usize)> {
        loop {
            let op = self.u8()?;
            if op == b'.' {
                return Ok((self.pop()?, self.tensors, self.pos));
            }
            if !self.push_value(op)? && !self.use_memo(op)? {
                self.build(op)?;
            }
        }
    }

    /// The opcodes that push a constant; false for any other.
    fn push_value(&mut self, op: u8) -> Result<bool> {
        match op {
            0x80 => {
                self.u8()?; // PROTO
            }
            0x95 => {
                self.take(8)?; // FRAME
            }
            b'}' => self.stack.push(Value::Dict(Vec::new())),
            b']' => self.stack.push(Value::List(Vec::new())),
            b')' => self.stack.push(Value::Tuple(Vec::new())),
            b'(' => self.stack.push(Value::Mark),
            b'N' => self.stack.push(Value::None),
            0x88 | 0x89 => self.stack.push(Value::OtherScalar),
            b'J' => {
                let v = i32::from_le_bytes(self.take(4)?.try_into()?);
                self.stack.push(Value::Int(v as i64));
            }
            b'K' => {
                let v = self.u8()?;
                self.stack.push(Value::Int(v as i64));
            }
            b'M' => {
                let v = u16::from_le_bytes(self.take(2)?.try_into()?);
                self.stack.push(Value::Int(v as i64));
            }
            0x8a => {
                let n = self.u8()? as usize;
                let bytes = self.take(n)?;
                if n > 8 {
                    self.stack.push(Value::BigInt(bytes.to_vec()));
                    return Ok(true);
                }
                let mut buf = [if bytes.last().is_some_and(|b| b & 0x80 != 0) { 0xff } else { 0 }; 8];
                buf[..n].copy_from_slice(bytes);
                self.stack.push(Value::Int(i64::from_le_bytes(buf)));
            }
            b'G' => {
                self.take(8)?;
                self.stack.push(Value::OtherScalar);
            }
            b'X' => {
                let n = self.u32()? as usize;
                let s = String::from_utf8(self.take(n)?.to_vec())?;
                self.stack.push(Value::Str(s));
            }
            0x8c => {
                let n = self.u8()? as usize;
                let s = String::from_utf8(self.take(n)?.to_vec())?;
                self.stack.push(Value::Str(s));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The opcodes that store into or read from the memo; false for any other.
    fn use_memo(&mut self, op: u8) -> Result<bool> {
        match op {
            b'q' => {
                let i = self.u8()? as u32;
                let v = self.top()?.clone();
                self.memo.insert(i, v);
            }
            b'r' => {
                let i = self.u32()?;
                let v = self.top()?.clone();
                self.memo.insert(i, v);
            }
            0x94 => {
                let i = self.memo.len() as u32;
                let v = self.top()?.clone();
                self.memo.insert(i, v);
            }
            b'h' => {
                let i = self.u8()? as u32;
                let v = self.memo.get(&i).cloned().ok_or_else(|| anyhow!("bad memo reference {i}"))?;
                self.stack.push(v);
            }
            b'j' => {
                let i = self.u32()?;
                let v = self.memo.get(&i).cloned().ok_or_else(|| anyhow!("bad memo reference {i}"))?;
                self.stack.push(v);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The opcodes that build containers, globals and tensors; an error for
    /// any opcode a state dict never needs.
    fn build(&mut self, op: u8) -> Result<()> {
        match op {
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.stack.push(Value::Global(module, name));
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (module, name) {
                    (Value::Str(m), Value::Str(n)) => self.stack.push(Value::Global(m, n)),
                    _ => bail!("malformed STACK_GLOBAL in the pickle"),
                }
            }
            b't' => {
                let items = self.pop_mark()?;
                self.stack.push(Value::Tuple(items));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let at = self.stack.len().checked_sub(n).ok_or_else(|| anyhow!("the pickle's stack is too short"))?;
                let items = self.stack.split_off(at);
                self.stack.push(Value::Tuple(items));
            }
            b'Q' => {
                let pid = self.pop()?;
                let storage = self.persistent(pid)?;
                self.stack.push(storage);
            }
            b'R' => {
                let args = self.pop()?;
                let func = self.pop()?;
                let v = self.reduce(func, args)?;
                self.stack.push(v);
            }
            0x81 => {
                let _args = self.pop()?;
                let cls = self.pop()?;
                self.stack.push(match cls {
                    Value::Global(m, n) if m == "collections" && n == "OrderedDict" => Value::Dict(Vec::new()),
                    Value::Global(m, n) => bail!("the pickle constructs {m}.{n}, which a state dict never needs"),
                    _ => bail!("malformed NEWOBJ in the pickle"),
                });
            }
            b'b' => {
                // BUILD: state for an object (a state dict's metadata); not needed.
                self.pop()?;
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                match self.top()? {
                    Value::Dict(d) => d.push((k, v)),
                    _ => bail!("SETITEM on a non-dict in the pickle"),
                }
            }
            b'u' => {
                let items = self.pop_mark()?;
                let Value::Dict(d) = self.top()? else { bail!("SETITEMS on a non-dict in the pickle") };
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    d.push((k, v));
                }
            }
            b'a' => {
                let v = self.pop()?;
                match self.top()? {
                    Value::List(l) => l.push(v),
                    _ => bail!("APPEND on a non-list in the pickle"),
                }
            }
            b'e' => {
                let items = self.pop_mark()?;
                match self.top()? {
                    Value::List(l) => l.extend(items),
                    _ => bail!("APPENDS on a non-list in the pickle"),
                }
            }
            other => bail!("unsupported pickle opcode 0x{other:02x} at byte {}", self.pos - 1),
        }
        Ok(())
    }

    fn persistent(&mut self, pid: Value) -> Result<Value> {
        let Value::Tuple(items) = pid else { bail!("unexpected persistent id in the pickle") };
        match items.as_slice() {
            [Value::Str(tag), Value::Global(_, ty), Value::Str(key), ..] if tag == "storage" => Ok(Value::Storage { kind: storage_kind(ty)?, key: key.clone() }),
            _ => bail!("unexpected persistent id in the pickle"),
        }
    }

    fn reduce(&mut self, func: Value, args: Value) -> Result<Value> {
        let Value::Global(module, name) = &func else { bail!("REDUCE of a non-callable in the pickle") };
        let Value::Tuple(args) = args else { bail!("REDUCE without an argument tuple in the pickle") };
        match (module.as_str(), name.as_str()) {
            ("collections", "OrderedDict") => Ok(Value::Dict(Vec::new())),
            ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
                let ints = |v: &Value| -> Result<Vec<i64>> {
                    match v {
                        Value::Tuple(xs) | Value::List(xs) => xs.iter().map(|x| if let Value::Int(i) = x { Ok(*i) } else { bail!("a tensor's shape holds a non-integer") }).collect(),
                        _ => bail!("a tensor's shape is not a tuple"),
                    }
                };
                match args.as_slice() {
                    [Value::Storage { kind, key }, Value::Int(offset), size, stride, ..] => {
                        self.tensors.push(TensorRef { kind: *kind, key: key.clone(), offset: *offset, size: ints(size)?, stride: ints(stride)? });
                        Ok(Value::Tensor(self.tensors.len() - 1))
                    }
                    _ => bail!("unexpected arguments to torch._utils.{name}"),
                }
            }
            ("torch._utils", "_rebuild_parameter") => match args.into_iter().next() {
                Some(t @ Value::Tensor(_)) => Ok(t),
                _ => bail!("unexpected arguments to torch._utils._rebuild_parameter"),
            },
            (m, n) => bail!("the pickle calls {m}.{n}; only tensors and state dicts can be read (this is not a plain state dict)"),
        }
    }
}

/// The legacy format's first pickle: torch's magic number 0x1950a86a20f9469cfc6c.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// The legacy format's protocol version.
const LEGACY_PROTOCOL: i64 = 1001;

/// Reads the state dict of a file `torch.save` wrote: a zip archive
/// (`pytorch_model.bin`, torch 1.6 and later) or the legacy format.
pub fn read_state_dict(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let mut head = [0u8; 4];
    let n = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)).with_context(|| format!("cannot open {}", path.display()))?;
    if n == 4 && head == *b"PK\x03\x04" {
        return read_zip(path);
    }
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    read_legacy(&data).with_context(|| format!("{} is neither a torch.save zip archive nor a legacy (pre-1.6) torch.save file", path.display()))
}

/// The tensors of a state dict whose storages `storage` supplies by key.
fn tensors_of(root: Value, refs: &[TensorRef], mut storage: impl FnMut(&TensorRef) -> Result<Tensor>) -> Result<Vec<(String, Tensor)>> {
    let Value::Dict(entries) = root else { bail!("the file does not hold a state dict") };
    let mut out = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        let (Value::Str(name), Value::Tensor(i)) = (k, v) else { continue };
        let r = &refs[i];
        let t = storage(r)?.f_as_strided(r.size.as_slice(), r.stride.as_slice(), r.offset).with_context(|| format!("tensor {name} lies outside its storage"))?.contiguous();
        out.push((name, t));
    }
    Ok(out)
}

/// Reads a legacy `torch.save` file held in `data`.
fn read_legacy(data: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let (magic, _, pos) = Unpickler::at(data, 0).run().context("no magic number")?;
    if !matches!(&magic, Value::BigInt(b) if b.as_slice() == LEGACY_MAGIC) {
        bail!("the file does not start with torch's magic number");
    }
    let (protocol, _, pos) = Unpickler::at(data, pos).run()?;
    if !matches!(protocol, Value::Int(LEGACY_PROTOCOL)) {
        bail!("unsupported legacy protocol {protocol:?}; {LEGACY_PROTOCOL} is read");
    }
    let (_system, _, pos) = Unpickler::at(data, pos).run()?;
    let (root, refs, pos) = Unpickler::at(data, pos).run().context("cannot read the state dict")?;
    let (keys, _, mut pos) = Unpickler::at(data, pos).run().context("cannot read the storage keys")?;
    let Value::List(keys) = keys else { bail!("the storage keys are not a list") };
    let mut storages: HashMap<String, Tensor> = HashMap::new();
    for key in keys {
        let Value::Str(key) = key else { bail!("a storage key is not a string") };
        let kind = refs.iter().find(|r| r.key == key).map(|r| r.kind).ok_or_else(|| anyhow!("storage {key} belongs to no tensor"))?;
        let count = data.get(pos..pos + 8).ok_or_else(|| anyhow!("the file ends before storage {key} (truncated?)"))?;
        let count = u64::from_le_bytes(count.try_into()?) as usize;
        let len = count.checked_mul(kind.elt_size_in_bytes()).ok_or_else(|| anyhow!("storage {key} is impossibly large"))?;
        let bytes = data.get(pos + 8..pos + 8 + len).ok_or_else(|| anyhow!("the file ends inside storage {key} (truncated?)"))?;
        storages.insert(key, Tensor::f_from_data_size(bytes, &[count as i64], kind)?);
        pos += 8 + len;
    }
    tensors_of(root, &refs, |r| storages.get(&r.key).map(Tensor::shallow_clone).ok_or_else(|| anyhow!("storage {} is missing", r.key)))
}

/// Reads the state dict of a `torch.save` zip archive.
fn read_zip(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| anyhow!("{} is not a readable torch.save zip archive ({e})", path.display()))?;
    let pkl_name = zip.file_names().filter_map(|n| n.ok()).map(|n| n.into_owned()).find(|n| n.ends_with("/data.pkl")).ok_or_else(|| anyhow!("{} has no data.pkl", path.display()))?;
    let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
    let mut pickle = Vec::new();
    zip.by_name(&pkl_name)?.read_to_end(&mut pickle)?;
    let (root, refs, _) = Unpickler::at(&pickle, 0).run().with_context(|| format!("cannot read the state dict in {}", path.display()))?;
    let mut storages: HashMap<String, Tensor> = HashMap::new();
    tensors_of(root, &refs, |r| {
        if !storages.contains_key(&r.key) {
            let mut bytes = Vec::new();
            zip.by_name(&format!("{prefix}data/{}", r.key))
                .with_context(|| format!("{}: storage {} is missing", path.display(), r.key))?
                .read_to_end(&mut bytes)?;
            let elem = r.kind.elt_size_in_bytes();
            storages.insert(r.key.clone(), Tensor::f_from_data_size(&bytes, &[(bytes.len() / elem) as i64], r.kind)?);
        }
        Ok(storages[&r.key].shallow_clone())
    })
    .with_context(|| format!("cannot read {}", path.display()))
}
