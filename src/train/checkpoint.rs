//! Checkpoints: after each epoch, the weights, the optimizer's state, the
//! schedule's position and the run so far, written atomically (a staging
//! folder, fsync, rename), keeping the last N and the best. `resume`
//! continues from the latest so that the loss curve matches an
//! uninterrupted run with the same seed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::{EpochRecord, StepRecord};

/// Where checkpoints go and how many are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointOptions {
    /// The folder that holds `epoch-N/` folders and `latest.json`.
    pub dir: PathBuf,
    /// How many of the latest epochs to keep (the best is kept as well).
    pub keep: usize,
}

/// Everything but the tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimizer steps taken.
    pub step: usize,
    /// The run's seed (each epoch reseeds from it).
    pub seed: Option<u64>,
    /// The rate multiplier reduce-on-plateau reached, and its state.
    pub plateau: Option<(f64, f64, usize)>,
    /// The run so far.
    pub epochs: Vec<EpochRecord>,
    /// Every step so far.
    pub steps: Vec<StepRecord>,
    /// Evaluations between epoch ends so far.
    #[serde(default)]
    pub evaluations: Vec<super::StepEval>,
    /// The epoch with the lowest validation loss, if any.
    pub best_epoch: Option<usize>,
    /// fp16's loss scaler: its scale, good steps in a row, steps skipped.
    #[serde(default)]
    pub loss_scale: Option<(f64, i64, usize)>,
    /// The Tunebook version that wrote it.
    pub version: String,
}

/// The pointer to the newest complete checkpoint.
#[derive(Debug, Serialize, Deserialize)]
struct Latest {
    epoch: usize,
    folder: String,
    best: Option<String>,
}

const MODEL_FILE: &str = "model.safetensors";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const STATE_FILE: &str = "state.json";
const LATEST_FILE: &str = "latest.json";

/// Removes what a killed writer left behind: staging folders (`.epoch-N-*`)
/// and temporary files (`.tmp*`). They were never renamed into place, so no
/// checkpoint refers to them.
fn remove_unfinished_writes(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with(".epoch-") && path.is_dir() {
            let _ = std::fs::remove_dir_all(&path);
        } else if name.starts_with(".tmp") && path.is_file() {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// The file a write paused for a fault test leaves in its staging folder.
pub const PAUSED_MARKER: &str = ".paused";

/// Writes epoch `state.epoch`'s checkpoint, points `latest.json` at it,
/// then removes checkpoints beyond the last `keep` (never the best).
pub fn save(options: &CheckpointOptions, model: &[(String, Tensor)], optimizer: &[(String, Tensor)], state: &CheckpointState) -> Result<PathBuf> {
    let dir = &options.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the checkpoint folder {}", dir.display()))?;
    remove_unfinished_writes(dir);
    let folder = format!("epoch-{}", state.epoch);
    let target = dir.join(&folder);
    crate::files::write_folder(&target, &format!(".{folder}-"), |staging| {
        let write = |name: &str, tensors: &[(String, Tensor)]| -> Result<()> {
            let path = staging.join(name);
            crate::model::weights::hf::write_safetensors(tensors, &path).with_context(|| format!("cannot write the checkpoint's {name}"))?;
            crate::files::fsync_file(&path)
        };
        write(MODEL_FILE, model)?;
        crate::files::pause_point("checkpoint-write", &staging.join(PAUSED_MARKER));
        write(OPTIMIZER_FILE, optimizer)?;
        let state_path = staging.join(STATE_FILE);
        std::fs::write(&state_path, serde_json::to_string_pretty(state)?).with_context(|| "cannot write the checkpoint's state".to_string())?;
        crate::files::fsync_file(&state_path)
    })?;
    let best = state.best_epoch.map(|e| format!("epoch-{e}"));
    crate::files::write_file(&dir.join(LATEST_FILE), serde_json::to_string_pretty(&Latest { epoch: state.epoch, folder, best: best.clone() })?.as_bytes())?;
    // Prune only once the new checkpoint is in place.
    let first_kept = state.epoch.saturating_sub(options.keep.max(1)) + 1;
    for e in 1..first_kept {
        let old = format!("epoch-{e}");
        if Some(&old) != best.as_ref() {
            let _ = std::fs::remove_dir_all(dir.join(old));
        }
    }
    Ok(target)
}

/// A checkpoint read back.
pub struct Loaded {
    /// The run's state.
    pub state: CheckpointState,
    /// Model tensors by parameter name.
    pub model: HashMap<String, Tensor>,
    /// Optimizer tensors by name.
    pub optimizer: HashMap<String, Tensor>,
    /// The folder it came from.
    pub folder: PathBuf,
}

/// Reads the newest complete checkpoint under `dir`.
pub fn load_latest(dir: &Path) -> Result<Loaded> {
    let latest_path = dir.join(LATEST_FILE);
    let text = std::fs::read_to_string(&latest_path)
        .with_context(|| format!("no checkpoint to resume in {}: {LATEST_FILE} is missing (fit writes it when given checkpoint: #{{ dir }})", dir.display()))?;
    let latest: Latest = serde_json::from_str(&text).with_context(|| format!("{} is damaged", latest_path.display()))?;
    load_folder(&dir.join(&latest.folder))
}

/// Reads one checkpoint folder.
pub fn load_folder(folder: &Path) -> Result<Loaded> {
    let read = |name: &str| -> Result<HashMap<String, Tensor>> {
        let path = folder.join(name);
        Ok(Tensor::read_safetensors(&path).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?.into_iter().collect())
    };
    let state_path = folder.join(STATE_FILE);
    let state: CheckpointState = serde_json::from_str(&std::fs::read_to_string(&state_path).with_context(|| format!("cannot read {}", state_path.display()))?)
        .with_context(|| format!("{} is damaged", state_path.display()))?;
    Ok(Loaded { state, model: read(MODEL_FILE)?, optimizer: read(OPTIMIZER_FILE)?, folder: folder.to_path_buf() })
}

/// Copies checkpoint tensors into the model's parameters, by name; every
/// parameter must be there with its shape.
pub fn restore_parameters(params: &[(String, Tensor)], saved: &HashMap<String, Tensor>, folder: &Path) -> Result<()> {
    let mut problems = Vec::new();
    for (name, t) in params {
        match saved.get(name) {
            Some(s) => problems.extend(crate::model::weights::hf::copy_checked(name, t, s, "checkpoint").err()),
            None => problems.push(format!("{name}: missing")),
        }
    }
    if !problems.is_empty() {
        bail!("the checkpoint in {} is not for this model (load the same model, with the same LoRA or heads, before resuming):\n  {}", folder.display(), problems.join("\n  "));
    }
    Ok(())
}
