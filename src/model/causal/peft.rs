//! LoRA on a language model: on every projection of attention and the MLP
//! by default, merged on saving, and saved or loaded alone in PEFT's
//! layout (`adapter_config.json` with `task_type: CAUSAL_LM`,
//! `adapter_model.safetensors` with `base_model.model.` names).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use tch::Tensor;

use super::CausalModel;
use crate::model::adapt::peft::{lora_adapter_config, lora_config_from, lora_target_matches, lora_tensors, merged_variables, remove_variables, ADAPTER_CONFIG, ADAPTER_WEIGHTS, PEFT_PREFIX};
use crate::model::arch::decoder_config::Family;
use crate::model::layers::LoraConfig;
use crate::model::weights::hf;
use crate::model::Learner;

impl CausalModel {
    /// The projections LoRA adapts unless told otherwise: every linear layer
    /// of attention and the MLP (as QLoRA and TRL's recipes do).
    pub fn default_lora_targets(&self) -> Vec<String> {
        let names: &[&str] = match self.config.family {
            Family::Gpt2 => &["c_attn", "c_proj", "c_fc"],
            _ => &["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        };
        names.iter().map(|s| s.to_string()).collect()
    }

    /// The LoRA this model carries, if any.
    pub fn lora(&self) -> Option<&LoraConfig> {
        self.lora.as_ref()
    }

    /// Adds LoRA updates to the linear layers `config.targets` names and
    /// freezes everything else. Returns the layers changed.
    pub fn add_lora(&mut self, config: &LoraConfig) -> Result<Vec<String>> {
        if config.r < 1 {
            bail!("LoRA rank r must be at least 1, got {}", config.r);
        }
        if config.alpha.is_nan() || config.alpha <= 0.0 {
            bail!("LoRA alpha must be positive, got {}", config.alpha);
        }
        if !(0.0..1.0).contains(&config.dropout) {
            bail!("LoRA dropout must be in [0, 1), got {}", config.dropout);
        }
        if self.lora.is_some() {
            bail!("this model already has LoRA; merge it first (merge_lora) or load a fresh model");
        }
        let all: Vec<String> = self.net.denses_mut().iter().map(|d| d.path().to_string()).collect();
        for t in &config.targets {
            if !all.iter().any(|n| lora_target_matches(t, n)) {
                let mut valid: Vec<String> = all.iter().filter_map(|n| n.rsplit('.').next().map(str::to_string)).collect();
                valid.sort();
                valid.dedup();
                bail!("LoRA target '{t}' names no linear layer of this model; valid: {} (a last name, a module path or a glob)", valid.join(", "));
            }
        }
        let root = self.vs.root();
        let mut changed = Vec::new();
        for d in self.net.denses_mut() {
            if config.targets.iter().any(|t| lora_target_matches(t, d.path())) {
                d.add_lora(&root, config);
                changed.push(d.path().to_string());
            }
        }
        self.lora = Some(config.clone());
        self.train_only(&["lora".to_string()])?;
        Ok(changed)
    }

    /// Folds every LoRA update into its weight and removes the LoRA
    /// matrices; returns the number of layers merged.
    pub fn merge_lora(&mut self) -> Result<usize> {
        if self.lora.is_none() {
            bail!("this model has no LoRA to merge; add one with add_lora");
        }
        let mut removed = Vec::new();
        let mut merged = 0;
        for d in self.net.denses_mut() {
            merged += usize::from(d.has_lora());
            removed.extend(d.merge_lora());
        }
        remove_variables(&self.vs, &removed);
        self.lora = None;
        Ok(merged)
    }

    /// The model's tensors with any LoRA folded in and the LoRA variables
    /// left out: what a plain checkpoint holds.
    pub(super) fn merged_tensors(&self) -> Vec<(String, Tensor)> {
        merged_variables(&self.vs.variables(), self.lora.as_ref())
    }

    /// Saves the LoRA matrices alone in PEFT's layout, which
    /// `PeftModel.from_pretrained(base, dir)` loads onto the base model.
    pub fn save_adapter(&self, dir: &Path) -> Result<PathBuf> {
        let config = self.lora.as_ref().context("this model has no LoRA to save; add one with add_lora, or save the whole model with save")?;
        let vars = self.vs.variables();
        let tensors = lora_tensors(&vars);
        let mut targets: Vec<String> = vars.keys().filter(|n| n.contains(".lora_A.")).filter_map(|n| n.split(".lora_A.").next().and_then(|m| m.rsplit('.').next()).map(str::to_string)).collect();
        targets.sort();
        targets.dedup();
        // GPT-2's Conv1D weights are [in, out]: PEFT needs to know.
        let adapter_config = lora_adapter_config(config, "CAUSAL_LM", &self.source.display().to_string(), &targets, self.config.family == Family::Gpt2, None);
        crate::model::save_folder(dir, |staging| {
            hf::write_safetensors(&tensors, &staging.join(ADAPTER_WEIGHTS))?;
            std::fs::write(staging.join(ADAPTER_CONFIG), serde_json::to_string_pretty(&adapter_config)? + "\n")?;
            Ok(())
        })
    }

    /// Adds the LoRA a PEFT adapter folder describes and loads its matrices.
    pub fn load_adapter(&mut self, dir: &Path) -> Result<()> {
        let text = std::fs::read_to_string(dir.join(ADAPTER_CONFIG)).with_context(|| format!("{} has no {ADAPTER_CONFIG}", dir.display()))?;
        let c: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", dir.join(ADAPTER_CONFIG).display()))?;
        let config = lora_config_from(&c, &dir.join(ADAPTER_CONFIG), self.default_lora_targets())?;
        self.add_lora(&config)?;
        let file = dir.join(ADAPTER_WEIGHTS);
        let tensors = hf::read_checkpoint(&file)?;
        let vars = self.vs.variables();
        let mut loaded = 0;
        for (name, t) in tensors {
            // PEFT names the adapter (`lora_A.default.weight`) in memory but not on disk.
            let ours = name.strip_prefix(PEFT_PREFIX).unwrap_or(&name).replace(".default.", ".");
            let var = vars.get(&ours).ok_or_else(|| anyhow!("{}: tensor {name} is not a LoRA matrix of this model", file.display()))?;
            hf::copy_checked(&ours, var, &t, "adapter").map_err(|e| anyhow!("{e}"))?;
            loaded += 1;
        }
        let expected = vars.keys().filter(|n| LoraConfig::is_lora_variable(n)).count();
        if loaded != expected {
            bail!("{} holds {loaded} LoRA tensors; this model's targets need {expected}", file.display());
        }
        Ok(())
    }
}
