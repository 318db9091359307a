//! Models: the architectures (`arch/`, one file per family, names that
//! mirror the checkpoints), their building blocks (`layers`), the weight
//! formats (`weights/`), the adaptations that fine-tuning adds (`adapt/`:
//! freezing, heads, LoRA and adapters), and the models a script loads
//! (`TextModel`, `ImageModel`), which training sees through `Learner`.

pub mod adapt;
pub mod arch;
pub mod causal;
pub mod image;
pub mod layers;
pub mod learner;
pub mod summary;
pub mod text;
pub mod weights;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

pub use adapt::freeze::{LayerGroup, KINDS};
pub use adapt::heads::{mean_pool, Pooling};
pub use arch::{Arch, Backbone, EncoderConfig};
pub use causal::CausalModel;
pub use image::{ImageArch, ImageModel, ImageSpec};
pub use layers::LoraConfig;
pub use learner::{store_weights_in_bf16, trained_weights_in_fp32, Learner};
pub use summary::{ModelSummary, ModuleCount, WeightStorage};
pub use text::{LoadOptions, TextModel};
pub use weights::hf::LoadReport;
pub use crate::task::Task;

/// Names that `resolve_path` maps to models in the bootstrap's cache.
pub const NAMED_MODELS: &[(&str, &str)] = &[
    ("minilm", "models/all-MiniLM-L6-v2"),
    ("all-MiniLM-L6-v2", "models/all-MiniLM-L6-v2"),
    ("smollm2", "models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"),
    ("SmolLM2-135M-Instruct", "models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"),
    ("mobilenet_v2", "models/mobilenet_v2/mobilenet_v2-b0353104.pth"),
    ("efficientnet_lite0", "models/efficientnet_lite0/efficientnet-lite0-57934424.pth"),
];

/// Turns a cache name (`minilm`) or a path into the model folder (or GGUF file).
pub fn resolve_path(name_or_path: &str, cache: &Path) -> Result<PathBuf> {
    if let Some((_, rel)) = NAMED_MODELS.iter().find(|(n, _)| *n == name_or_path) {
        let path = cache.join(rel);
        if !(path.is_file() || path.join("config.json").exists()) {
            bail!("model '{name_or_path}' is not in the cache {}; run scripts/bootstrap", cache.display());
        }
        return Ok(path);
    }
    let path = PathBuf::from(name_or_path);
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    if path.is_dir() || (path.is_file() && ["gguf", "pth", "pt"].contains(&extension.as_str())) {
        return Ok(path);
    }
    if path.is_file() {
        bail!("{name_or_path} is a file; load_model takes a model folder (with config.json), a .gguf file, or an image backbone's .pth/.pt state dict");
    }
    let names: Vec<&str> = NAMED_MODELS.iter().map(|(n, _)| *n).collect();
    bail!("no model named '{name_or_path}': it is neither a known name ({}) nor a folder", names.join(", "))
}


/// Writes a model folder atomically (see `files::write_folder`); returns
/// its canonical path.
pub(crate) fn save_folder(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    crate::files::write_folder(dir, ".tunebook-save-", fill)?;
    Ok(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()))
}
