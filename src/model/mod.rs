//! Pretrained models: Hugging Face layout loading and saving, task heads,
//! freezing and a per-module summary.

pub mod bert;
pub mod config;
pub mod distilbert;
pub mod freeze;
pub mod heads;
pub mod hf;
pub mod image;
pub mod learner;
pub mod peft;
pub mod roberta;
pub mod tokenizer;
pub mod torch_pickle;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use tch::nn;
use tch::{Device, Tensor};

pub use config::{Arch, EncoderConfig};
pub use freeze::{LayerGroup, KINDS};
pub use peft::LoraConfig;
pub use hf::LoadReport;
pub use image::{ImageArch, ImageModel, ImageSpec};
pub use learner::Learner;
pub use tokenizer::TextTokenizer;
pub use crate::task::Task;

/// Names that `Model::resolve_path` maps to models in the bootstrap's cache.
pub const NAMED_MODELS: &[(&str, &str)] = &[("minilm", "models/all-MiniLM-L6-v2"), ("all-MiniLM-L6-v2", "models/all-MiniLM-L6-v2")];

/// How a sequence becomes one vector for the classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// BERT's pooler on the first token, as Hugging Face's `BertForSequenceClassification`.
    Pooler,
    /// Mean of the last hidden states over real (non-padding) tokens.
    Mean,
}

impl Pooling {
    /// Valid names, for error messages.
    pub const NAMES: &'static [&'static str] = &["pooler", "mean"];

    /// Parses `pooler` or `mean`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "pooler" => Ok(Self::Pooler),
            "mean" => Ok(Self::Mean),
            _ => bail!("unknown pooling '{s}'; valid: {}", Self::NAMES.join(", ")),
        }
    }

    /// The name `parse` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pooler => "pooler",
            Self::Mean => "mean",
        }
    }
}

/// Options for `Model::load`.
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

/// The encoder, by architecture (RoBERTa's is BERT's).
enum Backbone {
    Bert(bert::Bert),
    DistilBert(distilbert::DistilBert),
}

/// Checkpoint tensors that are not parameters of a classifier: buffers and
/// the heads of pre-training tasks.
const NOT_PARAMETERS: &[&str] = &["cls.", "lm_head.", "vocab_transform.", "vocab_layer_norm.", "vocab_projector."];

/// A pretrained BERT-family encoder with a sequence-classification head.
pub struct Model {
    /// What the user called it (a cache name or a path).
    pub name: String,
    /// The folder it was loaded from.
    pub source: PathBuf,
    /// The parsed `config.json`.
    pub config: EncoderConfig,
    raw_config: serde_json::Value,
    vs: nn::VarStore,
    backbone: Backbone,
    head: heads::Head,
    /// The active head's name.
    head_name: String,
    /// The active head's parameter names.
    head_params: Vec<String>,
    /// Heads not in use (multi-task).
    parked: Vec<heads::ParkedHead>,
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
    peft: Option<peft::PeftMethod>,
}

impl Model {
    /// Turns a cache name (`minilm`) or a folder path into the model folder.
    pub fn resolve_path(name_or_path: &str, cache: &Path) -> Result<PathBuf> {
        if let Some((_, rel)) = NAMED_MODELS.iter().find(|(n, _)| *n == name_or_path) {
            let dir = cache.join(rel);
            if !dir.join("config.json").exists() {
                bail!("model '{name_or_path}' is not in the cache {}; run scripts/bootstrap", cache.display());
            }
            return Ok(dir);
        }
        let dir = PathBuf::from(name_or_path);
        if dir.is_dir() {
            return Ok(dir);
        }
        let names: Vec<&str> = NAMED_MODELS.iter().map(|(n, _)| *n).collect();
        bail!("no model named '{name_or_path}': it is neither a known name ({}) nor a folder", names.join(", "))
    }

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
        let saved_pooling = raw_config.pointer("/tunebook/pooling").and_then(|v| v.as_str()).map(Pooling::parse).transpose()?.unwrap_or(Pooling::Pooler);
        let pooling = if opts.labels.is_none() { saved_pooling } else { opts.pooling };

        let vs = nn::VarStore::new(opts.device);
        let root = vs.root();
        let arch = config.arch;
        let backbone = match arch {
            Arch::DistilBert => Backbone::DistilBert(distilbert::DistilBert::new(&root / arch.prefix(), &config)),
            Arch::Bert | Arch::Roberta => Backbone::Bert(bert::Bert::new(&root / arch.prefix(), &config)),
        };
        let head = heads::Head::new(&root, &config, pooling, labels.len() as i64, task);
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
            _ => heads::FIRST_HEAD.to_string(),
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
        match &self.backbone {
            Backbone::Bert(b) => b.forward(input_ids, token_type_ids, attention_mask, train),
            Backbone::DistilBert(d) => d.forward(input_ids, token_type_ids, attention_mask, train),
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
        ModelSummary { name: self.name.clone(), labels: self.labels.clone(), task: self.task, pooling: Some(self.pooling), device: self.device(), rows }
    }

    /// Saves in the Hugging Face layout (config.json, model.safetensors and
    /// the tokenizer files), LoRA updates folded into the weights. The
    /// folder is written beside the target and renamed into place, so a
    /// failure never leaves a half-written model.
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        let tensors = self.export_tensors()?;
        write_folder(dir, |staging| {
            hf::write_safetensors(&tensors, &staging.join("model.safetensors")).map_err(|e| anyhow::anyhow!("cannot write the weights: {e}"))?;
            std::fs::write(staging.join("config.json"), serde_json::to_string_pretty(&self.saved_config())? + "\n")?;
            for file in ["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"] {
                let src = self.source.join(file);
                if src.exists() {
                    std::fs::copy(&src, staging.join(file)).with_context(|| format!("cannot copy {}", src.display()))?;
                }
            }
            Ok(())
        })
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

/// Refuses a head with too few outputs for its task.
fn check_output_count(task: Task, outputs: usize) -> Result<()> {
    if outputs < task.min_outputs() {
        match task {
            Task::Classify => bail!("a classifier needs at least 2 labels, got {outputs}; for one number per row use task: \"regression\""),
            _ => bail!("a {} head needs at least 1 output", task.name()),
        }
    }
    Ok(())
}

impl Learner for Model {
    fn forward(&self, inputs: &crate::data::Inputs, train: bool) -> Result<Tensor> {
        match inputs {
            crate::data::Inputs::Text { input_ids, token_type_ids, attention_mask } => Ok(self.logits(input_ids, token_type_ids, attention_mask, train)),
            other => bail!("{} is a text model: it reads tokenized text, not {}; tokenize the data with this model", self.name, other.kind()),
        }
    }
    fn task(&self) -> Task {
        self.task
    }
    fn labels(&self) -> &[String] {
        &self.labels
    }
    fn set_labels(&mut self, labels: Vec<String>) {
        self.labels = labels;
    }
    fn device(&self) -> Device {
        self.vs.device()
    }
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        Model::named_parameters(self)
    }
    fn summary(&self) -> ModelSummary {
        Model::summary(self)
    }
    fn layer_groups(&self) -> Vec<LayerGroup> {
        Model::layer_groups(self)
    }
    fn select(&self, selector: &str) -> Result<Vec<String>> {
        Model::select(self, selector)
    }
    fn is_unused(&self, name: &str) -> bool {
        Model::is_unused(self, name)
    }
}

/// The mean of `hidden` over the positions where `attention_mask` is 1.
pub fn mean_pool(hidden: &Tensor, attention_mask: &Tensor) -> Tensor {
    let mask = attention_mask.to_kind(hidden.kind()).unsqueeze(-1);
    let dims = [1i64];
    (hidden * &mask).sum_dim_intlist(dims.as_slice(), false, None) / mask.sum_dim_intlist(dims.as_slice(), false, None).clamp_min(1.0)
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.name)
            .field("source", &self.source)
            .field("labels", &self.labels)
            .field("pooling", &self.pooling)
            .field("device", &self.device())
            .finish_non_exhaustive()
    }
}

/// Writes a folder through `fill` into a staging folder beside `dir`, then
/// renames it into place; returns the folder's canonical path.
fn write_folder(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    // In a distributed run every rank holds the same weights: rank 0 writes.
    crate::distributed::main_process_writes(|| write_folder_here(dir, fill), || dir.to_path_buf())
}

fn write_folder_here(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = tempfile::Builder::new().prefix(".tunebook-save-").tempdir_in(parent)?;
    fill(staging.path())?;
    replace_dir(staging, dir)?;
    Ok(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()))
}

/// Moves a finished staging folder to `dest`, replacing what was there only
/// once the new folder is complete.
fn replace_dir(staging: tempfile::TempDir, dest: &Path) -> Result<()> {
    let staged = staging.keep();
    if dest.exists() {
        let old = dest.with_extension(format!("old-{}", std::process::id()));
        std::fs::rename(dest, &old).with_context(|| format!("cannot move the old {} aside", dest.display()))?;
        std::fs::rename(&staged, dest).with_context(|| format!("cannot move the new model to {}", dest.display()))?;
        std::fs::remove_dir_all(&old).ok();
    } else {
        std::fs::rename(&staged, dest).with_context(|| format!("cannot move the new model to {}", dest.display()))?;
    }
    Ok(())
}

/// One row of `ModelSummary`.
#[derive(Debug, Clone)]
pub struct ModuleCount {
    /// Module path, e.g. `encoder.layer.3`.
    pub module: String,
    /// Parameters that train.
    pub trainable: i64,
    /// Parameters that are frozen.
    pub frozen: i64,
}

/// What trains and what is frozen, per module.
#[derive(Debug, Clone)]
pub struct ModelSummary {
    /// The model's name.
    pub name: String,
    /// Class names.
    pub labels: Vec<String>,
    /// What the head predicts.
    pub task: Task,
    /// Pooling used by the head (text models).
    pub pooling: Option<Pooling>,
    /// Where the model is.
    pub device: Device,
    /// Counts per module, in model order.
    pub rows: Vec<ModuleCount>,
}

impl ModelSummary {
    /// Parameters that train.
    pub fn trainable(&self) -> i64 {
        self.rows.iter().map(|r| r.trainable).sum()
    }
    /// All parameters.
    pub fn total(&self) -> i64 {
        self.rows.iter().map(|r| r.trainable + r.frozen).sum()
    }
}

impl std::fmt::Display for ModelSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.task {
            Task::Classify => "labels",
            Task::MultiLabel => "multi-label labels",
            Task::Regression => "regression outputs",
            Task::Tokens => "token labels",
        };
        let pooling = self.pooling.map(|p| format!("; pooling {}", p.name())).unwrap_or_default();
        writeln!(f, "Model {} ({} {what}: {}{pooling}; {:?})", self.name, self.labels.len(), self.labels.join(", "), self.device)?;
        writeln!(f, "{:<24} {:>12} {:>12}", "module", "trainable", "frozen")?;
        for r in &self.rows {
            writeln!(f, "{:<24} {:>12} {:>12}", r.module, group_digits(r.trainable), group_digits(r.frozen))?;
        }
        let (t, n) = (self.trainable(), self.total());
        write!(f, "trainable {} of {} parameters ({})", group_digits(t), group_digits(n), percent(t, n))
    }
}

/// `part` as a percentage of `total`, with enough decimals that a small
/// share does not read as zero (`99.3%`, `0.33%`, `0.0034%`).
pub fn percent(part: i64, total: i64) -> String {
    let p = 100.0 * part as f64 / total.max(1) as f64;
    match p {
        p if p == 0.0 || p >= 10.0 => format!("{p:.1}%"),
        p if p >= 0.1 => format!("{p:.2}%"),
        p => format!("{:.1$}%", p, (1 - p.log10().floor() as i64).clamp(2, 8) as usize),
    }
}

/// `12345678` as `12,345,678`.
pub fn group_digits(n: i64) -> String {
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// The row a parameter is counted under in the summary: the layer for
/// encoder layers, else the top-level module.
fn summary_module(name: &str) -> String {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 2 && (parts[0] == "encoder" || parts[0] == "transformer") && parts[1] == "layer" {
        parts[..3].join(".")
    } else if parts.len() > 2 && parts[0] == "heads" {
        parts[..2].join(".")
    } else {
        parts[0].to_string()
    }
}

/// A name part that sorts numbers by value (`layer.10` after `layer.9`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum NaturalPart {
    /// A numeric part.
    Num(u64),
    /// Any other part.
    Text(String),
}

/// Sorts names in model order (embeddings, encoder layers by number,
/// pooler, then heads), numbers by value.
fn natural_key(name: &str) -> Vec<NaturalPart> {
    let rank = match name.split('.').next().unwrap_or("") {
        "embeddings" => 0,
        "encoder" | "transformer" => 1,
        "pooler" => 2,
        _ => 3,
    };
    std::iter::once(NaturalPart::Num(rank))
        .chain(name.split('.').map(|p| p.parse().map(NaturalPart::Num).unwrap_or_else(|_| NaturalPart::Text(p.to_string()))))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn small_shares_keep_their_significant_digits() {
        assert_eq!(super::percent(22_566_146, 22_713_986), "99.3%");
        assert_eq!(super::percent(74_498, 22_713_986), "0.33%");
        assert_eq!(super::percent(770, 22_713_986), "0.0034%");
        assert_eq!(super::percent(0, 10), "0.0%");
    }
}
