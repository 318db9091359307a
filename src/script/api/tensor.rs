//! Tensor basics for teaching: make one, look at its shape, kind and
//! device, do simple arithmetic, and read a model's weights.

use rhai::{Array, Dynamic, Engine, EvalAltResult, INT};
use tch::{Kind, Tensor};

use super::handles::TensorHandle;
use crate::script::options::script_error;

type R<T> = Result<T, Box<EvalAltResult>>;

/// libtorch's message without its C++ backtrace.
fn torch_error(op: &str, e: tch::TchError) -> Box<EvalAltResult> {
    let text = e.to_string();
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim().trim_start_matches("Torch(\"").to_string();
    script_error(format!("{op}: {first}"))
}

/// Flattens nested arrays of numbers, checking that they are rectangular.
fn flatten(value: &Dynamic, depth: usize, shape: &mut Vec<i64>, out: &mut Vec<f64>, all_int: &mut bool) -> R<()> {
    if let Some(items) = value.read_lock::<Array>() {
        let n = items.len() as i64;
        match shape.get(depth) {
            None => shape.push(n),
            Some(&expected) if expected != n => {
                return Err(script_error(format!("tensor: rows of different lengths ({expected} and {n}); every row at one depth needs the same length")));
            }
            _ => {}
        }
        for item in items.iter() {
            flatten(item, depth + 1, shape, out, all_int)?;
        }
        return Ok(());
    }
    if depth < shape.len() {
        return Err(script_error("tensor: a number where a row was expected; nest arrays evenly, e.g. [[1, 2], [3, 4]]"));
    }
    if let Ok(i) = value.as_int() {
        out.push(i as f64);
    } else if let Ok(f) = value.as_float() {
        *all_int = false;
        out.push(f);
    } else {
        return Err(script_error(format!("tensor: expected numbers, found a {}", value.type_name())));
    }
    Ok(())
}

fn from_array(a: Array) -> R<TensorHandle> {
    let (mut shape, mut values, mut all_int) = (Vec::new(), Vec::new(), true);
    flatten(&Dynamic::from(a), 0, &mut shape, &mut values, &mut all_int)?;
    let kind = if all_int { Kind::Int64 } else { Kind::Float };
    Ok(TensorHandle(Tensor::from_slice(&values).to_kind(kind).reshape(&shape)))
}

/// The safetensors file of one tensor named `tensor` (as `safetensors.torch.load_file` reads it).
fn safetensors_bytes(t: &Tensor) -> anyhow::Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("t.safetensors");
    crate::model::weights::hf::write_safetensors(&[("tensor", t.to_device(tch::Device::Cpu).contiguous())], &file)?;
    Ok(std::fs::read(file)?)
}

/// `float32`, `int64`, ... as PyTorch names them.
fn dtype(t: &Tensor) -> String {
    match t.kind() {
        Kind::Float => "float32".into(),
        Kind::Double => "float64".into(),
        Kind::Half => "float16".into(),
        Kind::BFloat16 => "bfloat16".into(),
        Kind::Int64 => "int64".into(),
        Kind::Int => "int32".into(),
        Kind::Bool => "bool".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn to_nested(t: &Tensor) -> Dynamic {
    if t.dim() == 0 {
        return if t.is_floating_point() { Dynamic::from(t.double_value(&[])) } else { Dynamic::from(t.int64_value(&[]) as INT) };
    }
    Dynamic::from((0..t.size()[0]).map(|i| to_nested(&t.get(i))).collect::<Array>())
}

/// `tensor([[1, 2], [3, 4]], shape [2, 2], int64)`, with the middle elided when large.
fn describe(t: &Tensor) -> String {
    let flat = t.flatten(0, -1).to_kind(Kind::Double);
    let n = flat.numel();
    let show = |range: std::ops::Range<usize>| -> Vec<String> {
        range
            .map(|i| {
                let v = flat.double_value(&[i as i64]);
                if t.is_floating_point() { format!("{v:.4}") } else { format!("{v}") }
            })
            .collect()
    };
    let values = if n <= 8 { show(0..n).join(", ") } else { format!("{}, ..., {}", show(0..4).join(", "), show(n - 2..n).join(", ")) };
    format!("tensor([{values}], shape {:?}, {}, {})", t.size(), dtype(t), crate::runtime::device_name(t.device()))
}

macro_rules! binary {
    ($engine:ident, $op:literal, $f:ident, $fs:ident) => {
        $engine.register_fn($op, |a: &mut TensorHandle, b: TensorHandle| -> R<TensorHandle> { a.0.$f(&b.0).map(TensorHandle).map_err(|e| torch_error($op, e)) });
        $engine.register_fn($op, |a: &mut TensorHandle, b: f64| -> R<TensorHandle> { a.0.$fs(b).map(TensorHandle).map_err(|e| torch_error($op, e)) });
        $engine.register_fn($op, |a: &mut TensorHandle, b: INT| -> R<TensorHandle> { a.0.$fs(b).map(TensorHandle).map_err(|e| torch_error($op, e)) });
    };
}

pub(super) fn register(engine: &mut Engine) {
    engine.register_type_with_name::<TensorHandle>("Tensor");
    engine.register_fn("tensor", from_array);
    engine.register_fn("zeros", |shape: Array| -> R<TensorHandle> {
        let dims: Vec<i64> = shape.iter().map(|d| d.as_int().ok().filter(|&n| (0..=1 << 20).contains(&n))).collect::<Option<_>>().ok_or_else(|| script_error("zeros: the shape is an array of sizes from 0 to 1,048,576"))?;
        if dims.iter().try_fold(1i64, |a, &d| a.checked_mul(d)).is_none_or(|n| n > 1 << 31) {
            return Err(script_error("zeros: more than 2^31 elements"));
        }
        Ok(TensorHandle(Tensor::zeros(dims.as_slice(), (Kind::Float, tch::Device::Cpu))))
    });
    engine.register_fn("load_tensor", |path: &str| -> R<TensorHandle> {
        // A safetensors file's tensor named "tensor", or its only one.
        let tensors = Tensor::read_safetensors(path).map_err(|e| script_error(format!("load_tensor: cannot read {path} as a safetensors file: {e}")))?;
        let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
        match tensors.iter().find(|(n, _)| n == "tensor").or(if tensors.len() == 1 { tensors.first() } else { None }) {
            Some((_, t)) => Ok(TensorHandle(t.shallow_clone())),
            None => Err(script_error(format!("load_tensor: {path} holds {} tensors ({}) and none named \"tensor\"", names.len(), names.join(", ")))),
        }
    });
    engine.register_get("shape", |t: &mut TensorHandle| -> Array { t.0.size().into_iter().map(|d| Dynamic::from(d as INT)).collect() });
    engine.register_get("dtype", |t: &mut TensorHandle| dtype(&t.0));
    engine.register_get("device", |t: &mut TensorHandle| crate::runtime::device_name(t.0.device()));
    engine.register_get("numel", |t: &mut TensorHandle| t.0.numel() as INT);
    engine.register_fn("item", |t: &mut TensorHandle| -> R<Dynamic> {
        if t.0.numel() != 1 {
            return Err(script_error(format!("item: the tensor has {} elements (shape {:?}); item() needs exactly one, e.g. after sum()", t.0.numel(), t.0.size())));
        }
        Ok(to_nested(&t.0.reshape([] as [i64; 0])))
    });
    engine.register_fn("to_array", |t: &mut TensorHandle| to_nested(&t.0));
    engine.register_fn("sum", |t: &mut TensorHandle| TensorHandle(t.0.sum(t.0.kind())));
    engine.register_fn("mean", |t: &mut TensorHandle| TensorHandle(t.0.to_kind(Kind::Float).mean(Kind::Float)));
    engine.register_fn("max", |t: &mut TensorHandle| TensorHandle(t.0.max()));
    engine.register_fn("min", |t: &mut TensorHandle| TensorHandle(t.0.min()));
    engine.register_fn("abs", |t: &mut TensorHandle| TensorHandle(t.0.abs()));
    engine.register_fn("norm", |t: &mut TensorHandle| TensorHandle(t.0.to_kind(Kind::Float).norm()));
    engine.register_fn("transpose", |t: &mut TensorHandle| -> R<TensorHandle> {
        if t.0.dim() != 2 {
            return Err(script_error(format!("transpose: needs a 2-D tensor, this one has shape {:?}", t.0.size())));
        }
        Ok(TensorHandle(t.0.tr()))
    });
    engine.register_fn("matmul", |a: &mut TensorHandle, b: TensorHandle| -> R<TensorHandle> { a.0.f_matmul(&b.0).map(TensorHandle).map_err(|e| torch_error("matmul", e)) });
    engine.register_fn("reshape", |t: &mut TensorHandle, shape: Array| -> R<TensorHandle> {
        let dims: Vec<i64> = shape.into_iter().map(|d| d.as_int().map_err(|_| script_error("reshape: the shape must be an array of integers"))).collect::<R<_>>()?;
        t.0.f_reshape(&dims).map(TensorHandle).map_err(|e| torch_error("reshape", e))
    });
    binary!(engine, "+", f_add, f_add_scalar);
    binary!(engine, "-", f_sub, f_sub_scalar);
    binary!(engine, "*", f_mul, f_mul_scalar);
    binary!(engine, "/", f_div, f_div_scalar);
    // A number on the left: 1 - t, 2 / t.
    engine.register_fn("+", |a: f64, b: TensorHandle| TensorHandle(&b.0 + a));
    engine.register_fn("*", |a: f64, b: TensorHandle| TensorHandle(&b.0 * a));
    engine.register_fn("-", |a: f64, b: TensorHandle| TensorHandle(-&b.0 + a));
    engine.register_fn("/", |a: f64, b: TensorHandle| TensorHandle(b.0.reciprocal() * a));
    engine.register_fn("+", |a: INT, b: TensorHandle| TensorHandle(&b.0 + a));
    engine.register_fn("*", |a: INT, b: TensorHandle| TensorHandle(&b.0 * a));
    engine.register_fn("-", |a: INT, b: TensorHandle| TensorHandle(-&b.0 + a));
    engine.register_fn("/", |a: INT, b: TensorHandle| TensorHandle(b.0.to_kind(Kind::Float).reciprocal() * a));
    engine.register_fn("==", |a: &mut TensorHandle, b: TensorHandle| a.0.size() == b.0.size() && a.0.equal(&b.0));
    engine.register_fn("save", |t: &mut TensorHandle, path: &str| -> R<String> {
        // One tensor named "tensor" in a safetensors file, written atomically.
        let bytes = safetensors_bytes(&t.0).map_err(|e| script_error(format!("save: {e}")))?;
        crate::files::write_file(std::path::Path::new(path), &bytes).map_err(|e| script_error(format!("save: cannot write {path}: {}", crate::files::plain_reason(&e))))?;
        Ok(path.to_string())
    });
    engine.register_fn("to_string", |t: &mut TensorHandle| describe(&t.0));
    engine.register_fn("to_debug", |t: &mut TensorHandle| describe(&t.0));
}
