//! Reading and writing weights in the Hugging Face layout.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use tch::{nn::VarStore, Tensor};

/// The file that lets transformers run a mean-pooled classifier
/// (`trust_remote_code=True`), written beside its weights.
pub const MEAN_POOLED_MODELING_FILE: &str = "modeling_tunebook.py";

/// `MEAN_POOLED_MODELING_FILE`'s contents.
pub const MEAN_POOLED_MODELING: &str = include_str!("modeling_tunebook.py");

/// What loading found besides the tensors it copied.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    /// Variables absent from the checkpoint, left at their fresh initialization (a new head).
    pub newly_initialized: Vec<String>,
    /// Checkpoint tensors not used: buffers such as `position_ids`, or other tasks' heads.
    pub ignored: Vec<String>,
}

/// Writes `tensors` to `path` as safetensors. A failure of the file system
/// reads as the OS says it ("File too large (os error 27)"), not as the
/// library's debug text.
pub fn write_safetensors<S: AsRef<str>, T: AsRef<Tensor>>(tensors: &[(S, T)], path: &Path) -> Result<()> {
    Tensor::write_safetensors(tensors, path).map_err(|e| match e {
        tch::TchError::SafeTensorError { err: safetensors::SafeTensorError::IoError(io), .. } => anyhow::Error::new(io),
        other => anyhow!("{other}"),
    })
}

/// The weights file of a model folder: `model.safetensors`, else `pytorch_model.bin`.
pub fn weights_file(dir: &Path) -> Result<std::path::PathBuf> {
    ["model.safetensors", "pytorch_model.bin"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.exists())
        .ok_or_else(|| anyhow!("{} has no model.safetensors or pytorch_model.bin", dir.display()))
}

/// Reads every tensor of a checkpoint: safetensors, or what torch.save wrote (`.bin`, `.pt`, `.pth`; zip or legacy).
pub fn read_checkpoint(file: &Path) -> Result<Vec<(String, Tensor)>> {
    if file.extension().is_some_and(|e| e == "bin" || e == "pt" || e == "pth") {
        return super::torch_pickle::read_state_dict(file);
    }
    Tensor::read_safetensors(file).map_err(|e| anyhow!("cannot read {}: it is truncated or not a safetensors file ({e})", file.display()))
}

/// Copies `src` into the variable `var`, converting its kind and device;
/// a shape mismatch comes back as a line naming both shapes (`from` says
/// where `src` came from: "checkpoint", "adapter").
pub fn copy_checked(name: &str, var: &Tensor, src: &Tensor, from: &str) -> std::result::Result<(), String> {
    if src.size() != var.size() {
        return Err(format!("{name}: {from} has {:?}, model expects {:?}", src.size(), var.size()));
    }
    let mut var = var.shallow_clone();
    tch::no_grad(|| var.copy_(&src.to_kind(var.kind()).to_device(var.device())));
    Ok(())
}

/// Copies a checkpoint's tensors (read from `file`) into `vs`. Names are
/// matched with or without the backbone's `prefix` (`bert`, ...). Variables
/// starting with one of `may_be_missing` (a new task head) may be absent;
/// checkpoint tensors starting with one of `ignorable` (buffers, other tasks'
/// heads) are reported, not loaded. Any other missing tensor, a shape
/// mismatch or an unexpected tensor is an error that names them.
pub fn load_weights(
    vs: &VarStore,
    file: &Path,
    tensors: Vec<(String, Tensor)>,
    prefix: &str,
    may_be_missing: &[&str],
    ignorable: &[&str],
) -> Result<LoadReport> {
    let prefix = format!("{prefix}.");
    let mut by_name: HashMap<String, Tensor> = HashMap::new();
    for (name, t) in tensors {
        let short = name.strip_prefix(&prefix).unwrap_or(&name).to_string();
        by_name.insert(short, t);
    }
    let mut report = LoadReport::default();
    let mut missing = Vec::new();
    let mut shape_errors = Vec::new();
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, var) in vars {
        let short = name.strip_prefix(&prefix).unwrap_or(&name);
        match by_name.remove(short) {
            Some(src) => {
                if let Err(e) = copy_checked(short, &var, &src, "checkpoint") {
                    shape_errors.push(e);
                }
            }
            None if may_be_missing.iter().any(|p| short.starts_with(p)) => report.newly_initialized.push(short.to_string()),
            None => missing.push(short.to_string()),
        }
    }
    if !shape_errors.is_empty() {
        bail!("{}: shape mismatch (is config.json from the same checkpoint?):\n  {}", file.display(), shape_errors.join("\n  "));
    }
    if !missing.is_empty() {
        bail!("{}: {} tensors are missing from the checkpoint: {}", file.display(), missing.len(), missing.join(", "));
    }
    let mut unexpected = Vec::new();
    for name in by_name.into_keys() {
        if name.ends_with("position_ids") || ignorable.iter().any(|p| name.starts_with(p)) {
            report.ignored.push(name);
        } else {
            unexpected.push(name);
        }
    }
    if !unexpected.is_empty() {
        unexpected.sort();
        bail!("{}: the checkpoint has tensors this model does not: {}", file.display(), unexpected.join(", "));
    }
    report.ignored.sort();
    Ok(report)
}
