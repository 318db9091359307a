//! The text model: a pretrained BERT-family encoder (BERT, RoBERTa,
//! DistilBERT) with its tokenizer and task heads, loaded from and saved to
//! the Hugging Face layout. Freezing, heads and LoRA/adapters extend it in
//! `model::adapt`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tch::nn;
use tch::{Device, Tensor};

mod freeze;
mod heads;
mod peft;

use super::adapt::heads::{self as head, check_output_count, Pooling};
use super::adapt::peft::PeftMethod;
use super::arch::{bert, distilbert, Arch, Backbone, EncoderConfig, MEAN_POOLED_TYPE_PREFIX};
use super::summary::{natural_key, summary_module, ModelSummary, ModuleCount, NaturalPart, WeightStorage};
use super::weights::hf::{self, LoadReport};
use super::{LayerGroup, Learner};
use crate::data::TextTokenizer;
use crate::task::Task;

/// Options for `TextModel::load`.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Class names of the classification head; `None` keeps the checkpoint's
    /// own head and labels (an error if it has none).
    pub labels: Option<Vec<String>>,
    /// How the encoder's output is pooled.
    pub pooling: Pooling,
    /// What the head predicts; `None` keeps the checkpoint's (or classifies).
    pub task: Option<Task>,
    /// Where the model's variables live.
    pub device: Device,
    /// Overrides the checkpoint's dropout (hidden, attention and
    /// classifier), as `from_pretrained(..., hidden_dropout_prob=p)` does.
    pub dropout: Option<f64>,
}

/// Checkpoint tensors that are not parameters of a classifier: buffers and
/// the heads of pre-training tasks.
const NOT_PARAMETERS: &[&str] = &["cls.", "lm_head.", "vocab_transform.", "vocab_layer_norm.", "vocab_projector."];

/// A pretrained BERT-family text encoder with its task heads (the active
/// one and any parked for multi-task use), tokenizer and adaptations.
pub struct TextModel {
    /// What the user called it (a cache name or a path).
    pub name: String,
    /// The folder it was loaded from.
    pub source: PathBuf,
    /// The parsed `config.json`.
    pub config: EncoderConfig,
    raw_config: serde_json::Value,
    vs: nn::VarStore,
    backbone: Backbone,
    head: head::Head,
    /// The active head's name.
    head_name: String,
    /// The active head's parameter names.
    head_params: Vec<String>,
    /// Heads not in use (multi-task).
    parked: Vec<head::ParkedHead>,
    /// The tokenizer that came with the model.
    pub tokenizer: TextTokenizer,
    /// Class names, by label id (label names for multi-label heads, output
    /// names for regression heads).
    pub labels: Vec<String>,
    /// What the active head predicts.
    pub task: Task,
    /// How sequences are pooled before the classifier.
    pub pooling: Pooling,
    /// What loading reported (new head, ignored buffers).
    pub load_report: LoadReport,
    /// LoRA or adapters, once added.
    peft: Option<PeftMethod>,
    /// Whether training passes checkpoint the encoder's layers.
    checkpointing: bool,
}

impl TextModel {
    /// Loads a Hugging Face folder: `config.json`, `model.safetensors` (or
    /// `pytorch_model.bin`), `tokenizer.json` (or `vocab.txt`).
    pub fn load(name: &str, dir: &Path, opts: &LoadOptions) -> Result<Self> {
        let (mut config, raw_config) = EncoderConfig::load(&dir.join("config.json"))?;
        if let Some(p) = opts.dropout {
            if !(0.0..1.0).contains(&p) {
                bail!("dropout must be at least 0 and below 1, got {p}");
            }
            (config.hidden_dropout_prob, config.attention_probs_dropout_prob, config.classifier_dropout) = (p, p, Some(p));
        }
        let weights = hf::weights_file(dir)?;
        let tokenizer = TextTokenizer::load_from_dir(dir)?;
        let saved_labels = config.label_names();
        let saved_task = saved_task(&raw_config, saved_labels.as_ref().map(Vec::len))?;
        let task = opts.task.or(saved_task).unwrap_or_default();
        let labels = match (&opts.labels, saved_labels) {
            (Some(l), _) => l.clone(),
            (None, Some(l)) => l,
            (None, None) if task == Task::Regression => vec!["LABEL_0".to_string()],
            (None, None) => bail!("{} has no classification head; give the labels (a count or a list of names)", dir.display()),
        };
        check_output_count(task, labels.len())?;
        // The pooling the checkpoint's own head (if any) was trained with.
        let mean_pooled_type = raw_config.get("model_type").and_then(|v| v.as_str()).is_some_and(|t| t.starts_with(MEAN_POOLED_TYPE_PREFIX));
        let saved_pooling = match raw_config.pointer("/tunebook/pooling").and_then(|v| v.as_str()) {
            Some(p) => Pooling::parse(p)?,
            None if mean_pooled_type => Pooling::Mean,
            None => Pooling::Pooler,
        };
        let pooling = if opts.labels.is_none() { saved_pooling } else { opts.pooling };

        let vs = nn::VarStore::new(opts.device);
        let root = vs.root();
        let arch = config.arch;
        let backbone = match arch {
            Arch::DistilBert => Backbone::DistilBert(distilbert::DistilBert::new(&root / arch.prefix(), &config)),
            Arch::Bert | Arch::Roberta => Backbone::Bert(bert::Bert::new(&root / arch.prefix(), &config)),
        };
        let head = head::Head::new(&root, &config, pooling, labels.len() as i64, task);
        // A checkpoint's head is kept only when it is the same head for the same labels.
        let keep_head = (opts.labels.is_none() || config.label_names().map(|l| l.len()) == Some(labels.len())) && pooling == saved_pooling && saved_task == Some(task);
        let head_names = ["classifier.", "pre_classifier."];
        let mut tensors = hf::read_checkpoint(&weights)?;
        if !keep_head {
            tensors.retain(|(n, _)| !head_names.iter().any(|h| n.starts_with(h)));
        }
        let head_params: Vec<String> = vs.variables().into_keys().filter(|n| head_names.iter().any(|h| n.starts_with(h))).collect();
        // The checkpoint's other heads (multi-task), when its heads are kept.
        let mut parked_specs = Vec::new();
        if opts.labels.is_none() {
            for h in raw_config.pointer("/tunebook/heads").and_then(|h| h.as_array()).into_iter().flatten() {
                let (Some(name), Some(labels), Some(pooling)) = (h["name"].as_str(), h["labels"].as_array(), h["pooling"].as_str()) else {
                    bail!("{}: tunebook.heads entries need a name, labels and pooling", dir.display());
                };
                let labels: Vec<String> = labels.iter().filter_map(|l| l.as_str().map(str::to_string)).collect();
                let head_task = h["task"].as_str().map(Task::parse).transpose()?.unwrap_or_default();
                parked_specs.push((name.to_string(), labels, Pooling::parse(pooling)?, head_task));
            }
        } else {
            tensors.retain(|(n, _)| !n.starts_with("heads."));
        }
        let head_name = match (opts.labels.is_none(), raw_config.pointer("/tunebook/head").and_then(|h| h.as_str())) {
            (true, Some(name)) => name.to_string(),
            _ => head::FIRST_HEAD.to_string(),
        };
        let mut ignorable: Vec<&str> = NOT_PARAMETERS.to_vec();
        if arch == Arch::Roberta {
            ignorable.push("pooler."); // RobertaModel checkpoints carry a pooler its classifier does not use.
        }
        let load_report = LoadReport::default();
        let mut model = Self {
            name: name.to_string(),
            source: dir.to_path_buf(),
            config,
            raw_config,
            vs,
            backbone,
            head,
            head_name,
            head_params,
            parked: Vec::new(),
            tokenizer,
            labels,
            task,
            pooling,
            load_report,
            peft: None,
            checkpointing: false,
        };
        // Rebuilt before the weights load, so that they load into them.
        for (name, labels, pooling, head_task) in parked_specs {
            model.add_head(&name, labels, pooling, head_task)?;
        }
        model.load_report = hf::load_weights(&model.vs, &weights, tensors, arch.prefix(), &["classifier", "pre_classifier", "pooler"], &ignorable)?;
        if model.pooling == Pooling::Mean {
            // Mean pooling never uses the pooler; freezing it keeps the summary truthful.
            for (n, t) in model.vs.variables() {
                if n.contains("pooler.") {
                    let _ = t.set_requires_grad(false);
                }
            }
        }
        Ok(model)
    }

    /// The checkpoint's `config.json`, as read.
    pub fn raw_config(&self) -> &serde_json::Value {
        &self.raw_config
    }

    /// The device the model's variables are on.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The encoder's last hidden states `[batch, seq, hidden]`, in eval mode
    /// (no dropout) unless `train`.
    pub fn hidden_states(&self, input_ids: &Tensor, token_type_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Tensor {
        let inputs = crate::model::layers::checkpoint_inputs(self.checkpointing, train, self.stack_path(), self.config.num_hidden_layers, || self.named_parameters());
        let run = crate::model::layers::BlockRun::from_inputs(inputs.as_deref());
        match &self.backbone {
            Backbone::Bert(b) => b.forward(input_ids, token_type_ids, attention_mask, train, run),
            Backbone::DistilBert(d) => d.forward(input_ids, token_type_ids, attention_mask, train, run),
        }
    }

    /// The head's raw outputs `[batch, labels]`: logits for classification,
    /// values for regression.
    pub fn logits(&self, input_ids: &Tensor, token_type_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Tensor {
        let hidden = self.hidden_states(input_ids, token_type_ids, attention_mask, train);
        self.head.forward(&self.backbone, &hidden, attention_mask, train)
    }

    /// Every parameter with its user-facing name (without the backbone's
    /// `bert.`/`roberta.`/`distilbert.` prefix).
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let prefix = format!("{}.", self.config.arch.prefix());
        let mut vars: Vec<(String, Tensor)> = self
            .vs
            .variables()
            .into_iter()
            .map(|(n, t)| (n.strip_prefix(&prefix).map(str::to_string).unwrap_or(n), t))
            .collect();
        vars.sort_by_key(|(name, _)| natural_key(name));
        vars
    }

    /// The module paths a freeze pattern can name: every dotted prefix of a
    /// parameter name, parameters included.
    pub fn module_names(&self) -> Vec<String> {
        let mut names = std::collections::BTreeSet::new();
        for (name, _) in self.named_parameters() {
            let parts: Vec<&str> = name.split('.').collect();
            for i in 1..=parts.len() {
                names.insert(parts[..i].join("."));
            }
        }
        let mut names: Vec<String> = names.into_iter().collect();
        names.sort_by_key(|n| natural_key(n));
        names
    }

    /// Parameter counts per module, the totals and the trainable share.
    pub fn summary(&self) -> ModelSummary {
        let mut rows: BTreeMap<(Vec<NaturalPart>, String), (i64, i64)> = BTreeMap::new();
        for (name, t) in self.named_parameters() {
            let module = summary_module(&name);
            let n = t.numel() as i64;
            let entry = rows.entry((natural_key(&module), module)).or_default();
            if t.requires_grad() {
                entry.0 += n;
            } else {
                entry.1 += n;
            }
        }
        let rows: Vec<ModuleCount> = rows.into_iter().map(|((_, module), (trainable, frozen))| ModuleCount { module, trainable, frozen }).collect();
        ModelSummary { name: self.name.clone(), labels: self.labels.clone(), task: self.task, pooling: Some(self.pooling), device: self.device(), rows, batch_norm: None, storage: WeightStorage::of(self.named_parameters().iter().map(|(_, t)| t)) }
    }

    /// Whether the active head saves as a mean-pooled classifier, which
    /// transformers runs only with the modeling file saved beside it.
    pub fn exports_mean_pooled(&self) -> bool {
        self.pooling == Pooling::Mean && self.task != Task::Tokens
    }

    fn saved_config(&self) -> serde_json::Value {
        let mut config = self.raw_config.clone();
        let obj = config.as_object_mut().expect("config.json is an object");
        obj.insert("architectures".into(), serde_json::json!([self.config.arch.classifier_class()]));
        let id2label: serde_json::Map<String, serde_json::Value> =
            self.labels.iter().enumerate().map(|(i, l)| (i.to_string(), l.clone().into())).collect();
        let label2id: serde_json::Map<String, serde_json::Value> =
            self.labels.iter().enumerate().map(|(i, l)| (l.clone(), i.into())).collect();
        obj.insert("id2label".into(), id2label.into());
        obj.insert("label2id".into(), label2id.into());
        match self.task.problem_type() {
            Some(p) => drop(obj.insert("problem_type".into(), p.into())),
            None => drop(obj.remove("problem_type")),
        }
        if self.task == Task::Tokens {
            obj.insert("architectures".into(), serde_json::json!([self.config.arch.token_classifier_class()]));
        }
        // A mean-pooled head has no transformers class: the folder carries
        // its own, under a model type transformers will not guess at.
        let ours = |v: &serde_json::Value| v.to_string().contains(hf::MEAN_POOLED_MODELING_FILE.trim_end_matches(".py"));
        if obj.get("auto_map").is_some_and(ours) {
            obj.remove("auto_map");
        }
        obj.insert("model_type".into(), self.config.model_type.clone().into());
        if self.exports_mean_pooled() {
            let arch = self.config.arch;
            let (config_class, model_class) = arch.mean_pooled_classes();
            let module = hf::MEAN_POOLED_MODELING_FILE.trim_end_matches(".py");
            obj.insert("model_type".into(), arch.mean_pooled_model_type().into());
            obj.insert("architectures".into(), serde_json::json!([model_class]));
            obj.insert(
                "auto_map".into(),
                serde_json::json!({ "AutoConfig": format!("{module}.{config_class}"), "AutoModelForSequenceClassification": format!("{module}.{model_class}") }),
            );
        }
        let parked: Vec<serde_json::Value> = self.parked.iter().map(|h| h.describe()).collect();
        obj.insert(
            "tunebook".into(),
            serde_json::json!({ "pooling": self.pooling.name(), "head": self.head_name, "heads": parked, "version": env!("CARGO_PKG_VERSION") }),
        );
        config
    }
}

/// The task of a checkpoint's head: its `problem_type`, or what Hugging
/// Face infers without one (one output is regression). `None` without a head.
fn saved_task(raw_config: &serde_json::Value, saved_labels: Option<usize>) -> Result<Option<Task>> {
    let Some(n) = saved_labels else { return Ok(None) };
    let token_class = raw_config.pointer("/architectures/0").and_then(|a| a.as_str()).is_some_and(|a| a.ends_with("ForTokenClassification"));
    if token_class {
        return Ok(Some(Task::Tokens));
    }
    match raw_config.get("problem_type").and_then(|p| p.as_str()) {
        Some(p) => Task::parse(p).map(Some),
        None if n == 1 => Ok(Some(Task::Regression)),
        None => Ok(Some(Task::Classify)),
    }
}

impl Learner for TextModel {
    fn forward(&self, inputs: &crate::data::Inputs, train: bool) -> Result<Tensor> {
        match inputs {
            crate::data::Inputs::Text { input_ids, token_type_ids, attention_mask } => Ok(self.logits(input_ids, token_type_ids, attention_mask, train)),
            other => bail!("{} is a text model: it reads tokenized text, not {}; tokenize the data with this model", self.name, other.kind()),
        }
    }
    super::learner::learner_fields!();
    unsafe fn set_checkpointing(&mut self, on: bool) -> Result<()> {
        self.checkpointing = on;
        Ok(())
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        TextModel::named_parameters(self)
    }
    fn summary(&self) -> ModelSummary {
        TextModel::summary(self)
    }
    fn layer_groups(&self) -> Vec<LayerGroup> {
        TextModel::layer_groups(self)
    }
    fn select(&self, selector: &str) -> Result<Vec<String>> {
        TextModel::select(self, selector)
    }
    fn is_unused(&self, name: &str) -> bool {
        TextModel::is_unused(self, name)
    }
    fn layer_stack(&self) -> (&'static str, i64) {
        (self.stack_path(), self.config.num_hidden_layers)
    }
    /// Saves in the Hugging Face layout (config.json, model.safetensors and
    /// the tokenizer files), LoRA updates folded into the weights. The
    /// folder is written beside the target and renamed into place, so a
    /// failure never leaves a half-written model.
    fn save(&self, dir: &Path) -> Result<PathBuf> {
        let tensors = self.export_tensors()?;
        super::save_folder(dir, |staging| {
            hf::write_safetensors(&tensors, &staging.join("model.safetensors")).context("cannot write the weights")?;
            std::fs::write(staging.join("config.json"), serde_json::to_string_pretty(&self.saved_config())? + "\n")?;
            if self.exports_mean_pooled() {
                std::fs::write(staging.join(hf::MEAN_POOLED_MODELING_FILE), hf::MEAN_POOLED_MODELING)?;
            }
            for file in ["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"] {
                let src = self.source.join(file);
                if src.exists() {
                    std::fs::copy(&src, staging.join(file)).with_context(|| format!("cannot copy {}", src.display()))?;
                }
            }
            Ok(())
        })
    }
}

impl std::fmt::Debug for TextModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextModel")
            .field("name", &self.name)
            .field("source", &self.source)
            .field("labels", &self.labels)
            .field("pooling", &self.pooling)
            .field("device", &self.device())
            .finish_non_exhaustive()
    }
}

