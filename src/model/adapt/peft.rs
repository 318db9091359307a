//! Parameter-efficient fine-tuning: which method a model carries, the
//! adapter folder's layout as PEFT writes it, and which linear layers a
//! LoRA target names. The layers that carry the updates are in
//! `model::layers`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use serde_json::Value as Json;
use tch::Tensor;

use crate::model::layers::{merge_update, LoraConfig};
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

/// A model's variables as a plain checkpoint holds them: every LoRA update
/// (`config`'s scale, DoRA's magnitude where present) folded into its
/// layer's weight and the update's own variables left out; on the CPU.
pub(in crate::model) fn merged_variables(vars: &HashMap<String, Tensor>, config: Option<&LoraConfig>) -> Vec<(String, Tensor)> {
    let scale = config.map(LoraConfig::scale).unwrap_or(0.0);
    let mut out = Vec::new();
    for (name, t) in vars {
        if LoraConfig::is_lora_variable(name) {
            continue;
        }
        let module = name.strip_suffix(".weight").unwrap_or(name);
        let t = match vars.get(&format!("{module}.lora_A.weight")).zip(vars.get(&format!("{module}.lora_B.weight"))) {
            Some((a, b)) => merge_update(t, a, b, vars.get(&format!("{module}.lora_magnitude_vector")), scale),
            None => t.detach(),
        };
        out.push((name.clone(), t.to_device(tch::Device::Cpu)));
    }
    out
}

/// The LoRA variables of a model, under PEFT's names, on the CPU, sorted.
pub(in crate::model) fn lora_tensors(vars: &HashMap<String, Tensor>) -> Vec<(String, Tensor)> {
    let mut tensors: Vec<(String, Tensor)> = vars.iter().filter(|(n, _)| LoraConfig::is_lora_variable(n)).map(|(n, t)| (format!("{PEFT_PREFIX}{n}"), t.detach().to_device(tch::Device::Cpu))).collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

/// PEFT's `adapter_config.json` for a LoRA: `task_type` (`CAUSAL_LM`,
/// `SEQ_CLS`, `TOKEN_CLS`), the base model's name or folder, the target
/// layers' names, whether weights are stored `[in, out]` (GPT-2's Conv1D)
/// and the modules saved whole beside the update (a classifier's head).
pub(in crate::model) fn lora_adapter_config(config: &LoraConfig, task_type: &str, base: &str, targets: &[String], fan_in_fan_out: bool, modules_to_save: Option<&[String]>) -> Json {
    let mut c = serde_json::json!({
        "peft_type": "LORA",
        "task_type": task_type,
        "base_model_name_or_path": base,
        "r": config.r,
        "lora_alpha": config.alpha,
        "lora_dropout": config.dropout,
        "target_modules": targets,
        "bias": "none",
        "fan_in_fan_out": fan_in_fan_out,
        "inference_mode": true,
        "use_rslora": config.rslora,
        "use_dora": config.dora,
    });
    if let Some(m) = modules_to_save {
        c["modules_to_save"] = m.into();
    }
    c
}

/// The LoRA settings of a PEFT `adapter_config.json` (read from `file`, for
/// errors); `default_targets` when it names none.
pub(in crate::model) fn lora_config_from(c: &Json, file: &Path, default_targets: Vec<String>) -> Result<LoraConfig> {
    let field = |k: &str| c.get(k).ok_or_else(|| anyhow!("{}: '{k}' is missing", file.display()));
    if c["peft_type"] != "LORA" {
        anyhow::bail!("{}: peft_type {} is not supported here; LoRA adapters (peft_type LORA) are", file.display(), c["peft_type"]);
    }
    let targets = match &c["target_modules"] {
        Json::Array(a) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        Json::String(s) => vec![s.clone()],
        _ => default_targets,
    };
    for unsupported in ["use_qalora", "lora_bias"] {
        if c.get(unsupported) == Some(&Json::Bool(true)) {
            anyhow::bail!("{}: {unsupported} is not supported; Tunebook loads LoRA, rsLoRA and DoRA adapters", file.display());
        }
    }
    Ok(LoraConfig {
        r: field("r")?.as_i64().with_context(|| format!("{}: r must be an integer", file.display()))?,
        alpha: field("lora_alpha")?.as_f64().with_context(|| format!("{}: lora_alpha must be a number", file.display()))?,
        dropout: c.get("lora_dropout").and_then(Json::as_f64).unwrap_or(0.0),
        targets,
        rslora: c.get("use_rslora").and_then(Json::as_bool).unwrap_or(false),
        dora: c.get("use_dora").and_then(Json::as_bool).unwrap_or(false),
    })
}
