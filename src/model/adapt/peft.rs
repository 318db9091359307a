//! Parameter-efficient fine-tuning: which method a model carries, the
//! adapter folder's layout as PEFT writes it, and which linear layers a
//! LoRA target names. The layers that carry the updates are in
//! `model::layers`.

use crate::model::layers::LoraConfig;
use crate::suggest::glob_match;

/// The parameter-efficient method a model carries.
#[derive(Debug, Clone, PartialEq)]
pub enum PeftMethod {
    /// LoRA updates on some linear layers.
    Lora(LoraConfig),
    /// Houlsby bottleneck adapters of this size in every layer.
    Adapters {
        /// The bottleneck's width.
        size: i64,
    },
}

/// Where PEFT puts a model's own tensor names in an adapter file.
pub(in crate::model) const PEFT_PREFIX: &str = "base_model.model.";
/// The adapter folder's files, as PEFT names them.
pub(in crate::model) const ADAPTER_CONFIG: &str = "adapter_config.json";
pub(in crate::model) const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
/// What PEFT's config has no key for (the head's labels and pooling), kept
/// apart so that PEFT reads `adapter_config.json` without a warning.
pub(in crate::model) const TUNEBOOK_CONFIG: &str = "tunebook_adapter.json";

/// Whether a LoRA target names linear layer `name`: its last part
/// (`query`), a dotted suffix (`attention.self.query`), or a glob.
pub(in crate::model) fn lora_target_matches(target: &str, name: &str) -> bool {
    name == target || name.ends_with(&format!(".{target}")) || glob_match(target, name)
}

/// Removes the named variables (merged LoRA matrices) from a variable store.
pub(in crate::model) fn remove_variables(vs: &tch::nn::VarStore, names: &[String]) {
    let mut vars = vs.variables_.lock().expect("variable store lock");
    for name in names {
        if let Some(t) = vars.named_variables.remove(name) {
            let ptr = t.data_ptr();
            vars.trainable_variables.retain(|v| v.tensor.data_ptr() != ptr);
        }
    }
}
