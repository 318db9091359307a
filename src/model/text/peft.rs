//! LoRA and bottleneck adapters on the text model: adding, merging, and
//! saving and loading adapters in PEFT's layout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use tch::Tensor;

use super::TextModel;
use crate::model::adapt::peft::{lora_adapter_config, lora_config_from, lora_target_matches, merged_variables, remove_variables, PeftMethod, ADAPTER_CONFIG, ADAPTER_WEIGHTS, PEFT_PREFIX, TUNEBOOK_CONFIG};
use crate::model::layers::{Dense, LoraConfig};
use crate::model::weights::hf;
use crate::model::{Arch, Backbone, Learner, Task};

impl TextModel {
    /// The parameter-efficient method added to this model, if any.
    pub fn peft(&self) -> Option<&PeftMethod> {
        self.peft.as_ref()
    }

    /// The LoRA targets PEFT uses by default for this architecture.
    pub fn default_lora_targets(&self) -> Vec<String> {
        let names: &[&str] = match self.config.arch {
            Arch::DistilBert => &["q_lin", "v_lin"],
            _ => &["query", "value"],
        };
        names.iter().map(|s| s.to_string()).collect()
    }

    /// Adds LoRA updates to the linear layers `config.targets` names and
    /// freezes everything else except the head. Returns the layers changed.
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
        self.check_no_peft()?;
        let prefix = format!("{}.", self.config.arch.prefix());
        let user_name = |path: &str| path.strip_prefix(&prefix).unwrap_or(path).to_string();
        let all: Vec<String> = self.denses_mut().iter().map(|d| user_name(d.path())).collect();
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
        let denses = match &mut self.backbone {
            Backbone::Bert(b) => b.denses_mut(),
            Backbone::DistilBert(d) => d.denses_mut(),
        };
        for d in denses {
            let name = user_name(d.path());
            if config.targets.iter().any(|t| lora_target_matches(t, &name)) {
                d.add_lora(&root, config);
                changed.push(name);
            }
        }
        self.peft = Some(PeftMethod::Lora(config.clone()));
        self.train_only(&["lora".to_string(), "head".to_string()])?;
        Ok(changed)
    }

    /// Folds every LoRA update into its layer's weight (`W + alpha/r B A`)
    /// and removes the LoRA matrices; the model computes the same function
    /// (to float rounding) and saves as a plain Hugging Face model. Returns
    /// the number of layers merged.
    pub fn merge_lora(&mut self) -> Result<usize> {
        if !matches!(self.peft, Some(PeftMethod::Lora(_))) {
            bail!("this model has no LoRA to merge; add one with add_lora");
        }
        let mut removed = Vec::new();
        let mut merged = 0;
        for d in self.denses_mut() {
            merged += usize::from(d.has_lora());
            removed.extend(d.merge_lora());
        }
        remove_variables(&self.vs, &removed);
        self.peft = None;
        Ok(merged)
    }

    /// Adds Houlsby bottleneck adapters of width `size` after the attention
    /// and the feed-forward output of every layer, and freezes everything
    /// except the adapters, the LayerNorms and the head (as Houlsby et al.).
    pub fn add_adapters(&mut self, size: i64) -> Result<()> {
        if !(1..=self.config.hidden_size).contains(&size) {
            bail!("adapter size must be 1 to {} (the hidden size), got {size}", self.config.hidden_size);
        }
        self.check_no_peft()?;
        let root = self.vs.root();
        match &mut self.backbone {
            Backbone::Bert(b) => b.add_adapters(&root, size),
            Backbone::DistilBert(d) => d.add_adapters(&root, size),
        }
        self.peft = Some(PeftMethod::Adapters { size });
        self.train_only(&["adapter".to_string(), "norm".to_string(), "head".to_string()])?;
        Ok(())
    }

    /// Saves the adapter with the head, as PEFT does (`adapter_config.json`,
    /// `adapter_model.safetensors` with `base_model.model.` names, which
    /// PEFT's `PeftModel.from_pretrained` loads), plus the head's labels and
    /// pooling in `tunebook_adapter.json`: the
    /// LoRA or adapter tensors, the head, and any other tensor that differs
    /// from the base checkpoint. Written beside `dir` and renamed into place.
    pub fn save_adapter(&self, dir: &Path) -> Result<PathBuf> {
        let Some(method) = &self.peft else {
            bail!("this model has no adapter to save; add one with add_lora or add_adapters (or save the whole model with save)");
        };
        let base: HashMap<String, Tensor> = hf::read_checkpoint(&hf::weights_file(&self.source)?)?.into_iter().collect();
        let arch_prefix = format!("{}.", self.config.arch.prefix());
        let mut tensors = Vec::new();
        for (name, t) in self.vs.variables() {
            let user = name.strip_prefix(&arch_prefix).unwrap_or(&name);
            let is_new = LoraConfig::is_lora_variable(user) || user.contains(".adapter.") || self.select("head").is_ok_and(|h| h.iter().any(|n| n == user));
            let changed = || match base.get(&name).or_else(|| base.get(user)) {
                Some(b) => b.size() != t.size() || !b.to_kind(t.kind()).equal(&t.to_device(tch::Device::Cpu)),
                None => true,
            };
            if is_new || changed() {
                tensors.push((format!("{PEFT_PREFIX}{name}"), t.detach().to_device(tch::Device::Cpu)));
            }
        }
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let head_modules: Vec<String> = {
            let mut m: Vec<String> = self.select("head")?.iter().filter_map(|n| n.split('.').next().map(str::to_string)).collect();
            m.dedup();
            m
        };
        let tunebook = serde_json::json!({ "labels": self.labels, "task": self.task.name(), "pooling": self.pooling.name(), "version": env!("CARGO_PKG_VERSION") });
        let config = match method {
            PeftMethod::Lora(c) => {
                let task_type = if self.task == Task::Tokens { "TOKEN_CLS" } else { "SEQ_CLS" };
                lora_adapter_config(c, task_type, &self.source.display().to_string(), &c.targets, false, Some(&head_modules))
            }
            PeftMethod::Adapters { size } => serde_json::json!({
                "peft_type": "TUNEBOOK_BOTTLENECK", "task_type": "SEQ_CLS", "base_model_name_or_path": self.source.display().to_string(),
                "adapter_size": size, "modules_to_save": head_modules,
            }),
        };
        crate::model::save_folder(dir, |staging| {
            hf::write_safetensors(&tensors, &staging.join(ADAPTER_WEIGHTS)).context("cannot write the adapter weights")?;
            std::fs::write(staging.join(ADAPTER_CONFIG), serde_json::to_string_pretty(&config)? + "\n")?;
            std::fs::write(staging.join(TUNEBOOK_CONFIG), serde_json::to_string_pretty(&tunebook)? + "\n")?;
            Ok(())
        })
    }

    /// Loads an adapter folder written by `save_adapter` (or a PEFT LoRA for
    /// sequence classification): adds the same LoRA or adapters, then copies
    /// its tensors, head included. The model must have as many labels.
    pub fn load_adapter(&mut self, dir: &Path) -> Result<()> {
        let config_file = dir.join(ADAPTER_CONFIG);
        let text = std::fs::read_to_string(&config_file).with_context(|| format!("{} is not an adapter folder: cannot read {ADAPTER_CONFIG}", dir.display()))?;
        let config: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", config_file.display()))?;
        let tensors = hf::read_checkpoint(&dir.join(ADAPTER_WEIGHTS))?;
        // Present in folders Tunebook wrote; a PEFT folder has only the head's weights.
        let tunebook: serde_json::Value = std::fs::read_to_string(dir.join(TUNEBOOK_CONFIG)).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
        if let Some(labels) = tunebook.get("labels").and_then(|l| l.as_array()) {
            let labels: Vec<String> = labels.iter().filter_map(|l| l.as_str().map(str::to_string)).collect();
            if labels.len() != self.labels.len() {
                bail!("the adapter's head has {} labels ({}) but this model's has {}; load the base model with labels: {}", labels.len(), labels.join(", "), self.labels.len(), labels.len());
            }
            self.labels = labels;
        }
        if let Some(task) = tunebook.get("task").and_then(|t| t.as_str()) {
            let task = Task::parse(task)?;
            if task != self.task {
                bail!("the adapter's head is for {} but this model's is for {}; load the base model with task: \"{}\"", task.name(), self.task.name(), task.name());
            }
        }
        let field = |k: &str| config.get(k).ok_or_else(|| anyhow!("{}: '{k}' is missing", config_file.display()));
        match field("peft_type")?.as_str() {
            Some("LORA") => {
                let lora = lora_config_from(&config, &config_file, Vec::new())?;
                if lora.targets.is_empty() {
                    bail!("{}: target_modules must be a list of names", config_file.display());
                }
                self.add_lora(&lora)?;
            }
            Some("TUNEBOOK_BOTTLENECK") => {
                let size = field("adapter_size")?.as_i64().ok_or_else(|| anyhow!("{}: adapter_size must be an integer", config_file.display()))?;
                self.add_adapters(size)?;
            }
            other => bail!("{}: peft_type {other:?} is not supported; Tunebook loads LORA and TUNEBOOK_BOTTLENECK adapters", config_file.display()),
        }
        let vars = self.vs.variables();
        let arch_prefix = format!("{}.", self.config.arch.prefix());
        let mut problems = Vec::new();
        for (name, t) in tensors {
            let name = name.strip_prefix(PEFT_PREFIX).unwrap_or(&name);
            let var = vars.get(name).or_else(|| vars.get(&format!("{arch_prefix}{name}")));
            match var {
                Some(v) => problems.extend(hf::copy_checked(name, v, &t, "adapter").err()),
                None => problems.push(format!("{name}: no such tensor in this model")),
            }
        }
        if !problems.is_empty() {
            bail!("{}: the adapter does not fit this model (is it for the same base model?):\n  {}", dir.display(), problems.join("\n  "));
        }
        Ok(())
    }

    /// The tensors `save` writes: LoRA updates folded into their weights.
    pub(in crate::model) fn export_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let lora = match &self.peft {
            Some(PeftMethod::Adapters { .. }) => {
                bail!("bottleneck adapters cannot be folded into the weights, so the model cannot be saved in the plain Hugging Face layout; save them with save_adapter(dir)")
            }
            Some(PeftMethod::Lora(c)) => Some(c),
            None => None,
        };
        let head_names = self.head_export_names();
        let mut out: Vec<(String, Tensor)> = merged_variables(&self.vs.variables(), lora).into_iter().map(|(name, t)| (head_names.get(&name).cloned().unwrap_or(name), t)).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn check_no_peft(&self) -> Result<()> {
        match &self.peft {
            Some(PeftMethod::Lora(_)) => bail!("this model already has LoRA; merge it first (merge_lora) or load a fresh model"),
            Some(PeftMethod::Adapters { .. }) => bail!("this model already has bottleneck adapters; load a fresh model to add another method"),
            None => Ok(()),
        }
    }

    fn denses_mut(&mut self) -> Vec<&mut Dense> {
        match &mut self.backbone {
            Backbone::Bert(b) => b.denses_mut(),
            Backbone::DistilBert(d) => d.denses_mut(),
        }
    }
}