//! Small image networks built from options, for image and teaching tasks:
//! an MLP (`layers.N`) and a CNN (`features.N`: 3x3 convolution, ReLU,
//! 2x2 max-pool), each with a `classifier` head. They train with the same
//! loop, freezing and charts as the text models, and save as safetensors
//! with a `config.json` that `ImageModel::load` reads back.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Device, Tensor};

use super::{LayerGroup, Learner, ModelSummary, ModuleCount, Task};
use crate::data::Inputs;
use crate::suggest::{closest, glob_match};

/// The kind of network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageArch {
    /// Fully connected layers over the flattened pixels.
    Mlp,
    /// Convolution blocks, then a linear head.
    Cnn,
}

impl ImageArch {
    /// Valid names.
    pub const NAMES: &'static [&'static str] = &["mlp", "cnn"];

    /// Parses `mlp` or `cnn`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "mlp" => Ok(Self::Mlp),
            "cnn" => Ok(Self::Cnn),
            _ => bail!("unknown image architecture '{s}'; valid: {}", Self::NAMES.join(", ")),
        }
    }

    /// The name `parse` accepts.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The name of its stack of layers (`layers` or `features`).
    pub fn stack(self) -> &'static str {
        match self {
            Self::Mlp => "layers",
            Self::Cnn => "features",
        }
    }
}

/// What an image network is made of; saved in its `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSpec {
    /// MLP or CNN.
    pub arch: ImageArch,
    /// `[channels, height, width]` of the input images.
    pub input: [i64; 3],
    /// Widths of the MLP's hidden layers, or the CNN's channels per block.
    pub widths: Vec<i64>,
    /// Dropout before the head (and after each MLP layer).
    pub dropout: f64,
    /// The per-channel mean and std its training inputs were normalized
    /// with (Hugging Face's image_mean and image_std), so that predictions
    /// normalize new images the same way; set by `fit`.
    #[serde(default)]
    pub normalize: Option<(Vec<f32>, Vec<f32>)>,
}

/// A layer of the stack.
#[derive(Debug)]
enum Block {
    Dense(nn::Linear),
    Conv(nn::Conv2D),
}

/// A small image classifier or regressor.
#[derive(Debug)]
pub struct ImageModel {
    /// What the user called it.
    pub name: String,
    /// Its architecture.
    pub spec: ImageSpec,
    vs: nn::VarStore,
    blocks: Vec<Block>,
    classifier: nn::Linear,
    /// Output names by id (classes, labels or regression outputs).
    pub labels: Vec<String>,
    /// What the head predicts.
    pub task: Task,
}

/// The largest image side, channel count, layer width and single weight
/// matrix an image model accepts.
const MAX_SIDE: i64 = 4096;
const MAX_CHANNELS: i64 = 64;
const MAX_WIDTH: i64 = 65_536;
const MAX_LAYER_WEIGHTS: i64 = 1 << 31;

/// Refuses a dense layer too large to initialize, with what to change.
fn check_layer_size(name: &str, inputs: i64, outputs: i64) -> Result<()> {
    let weights = inputs.saturating_mul(outputs);
    if weights > MAX_LAYER_WEIGHTS {
        bail!("{name} would have {inputs} x {outputs} = {weights} weights (at most {MAX_LAYER_WEIGHTS}); use smaller images (load_dataset's size option), more convolution blocks or narrower layers");
    }
    Ok(())
}

impl ImageModel {
    /// A freshly initialized network (PyTorch's default initialization).
    pub fn new(name: &str, spec: ImageSpec, labels: Vec<String>, task: Task, device: Device) -> Result<Self> {
        let [c, h, w] = spec.input;
        if c < 1 || h < 1 || w < 1 {
            bail!("the input shape must be [channels, height, width] of positive sizes, got {:?}", spec.input);
        }
        // Beyond these, sizes overflow libtorch's initializers or memory long before training.
        if c > MAX_CHANNELS || h > MAX_SIDE || w > MAX_SIDE {
            bail!("the input shape {:?} is too large: at most {MAX_CHANNELS} channels and {MAX_SIDE} pixels a side", spec.input);
        }
        if spec.widths.iter().any(|&x| x > MAX_WIDTH) {
            bail!("layer widths must be at most {MAX_WIDTH}, got {:?}", spec.widths);
        }
        if task == Task::Tokens {
            bail!("token classification tags words of a text; an image model classifies, tags (multi_label) or scores (regression) whole images");
        }
        if labels.len() < task.min_outputs() {
            bail!("a {} head needs at least {} labels, got {}", task.name(), task.min_outputs(), labels.len());
        }
        if spec.widths.iter().any(|&x| x < 1) {
            bail!("layer widths must be at least 1, got {:?}", spec.widths);
        }
        if !(0.0..1.0).contains(&spec.dropout) {
            bail!("dropout must be at least 0 and below 1, got {}", spec.dropout);
        }
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let stack = &root / spec.arch.stack();
        let mut blocks = Vec::new();
        let features = match spec.arch {
            ImageArch::Mlp => {
                let mut width = c * h * w;
                for (i, &out) in spec.widths.iter().enumerate() {
                    check_layer_size(&format!("layers.{i}"), width, out)?;
                    blocks.push(Block::Dense(nn::linear(&stack / i, width, out, Default::default())));
                    width = out;
                }
                width
            }
            ImageArch::Cnn => {
                let (mut channels, mut side_h, mut side_w) = (c, h, w);
                for (i, &out) in spec.widths.iter().enumerate() {
                    if side_h < 2 || side_w < 2 {
                        bail!("{h}x{w} images are too small for {} convolution blocks (each halves the size); use at most {i}", spec.widths.len());
                    }
                    blocks.push(Block::Conv(nn::conv2d(&stack / i, channels, out, 3, nn::ConvConfig { padding: 1, ..Default::default() })));
                    (channels, side_h, side_w) = (out, side_h / 2, side_w / 2);
                }
                channels * side_h * side_w
            }
        };
        check_layer_size("classifier", features, labels.len() as i64)?;
        let classifier = nn::linear(root / "classifier", features, labels.len() as i64, Default::default());
        Ok(Self { name: name.to_string(), spec, vs, blocks, classifier, labels, task })
    }

    /// Whether `dir` holds a model `save` wrote.
    pub fn is_saved_image_model(dir: &Path) -> bool {
        std::fs::read_to_string(dir.join("config.json")).ok().and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok()).is_some_and(|c| c.get("tunebook_image_model").is_some())
    }

    /// Loads a folder `save` wrote.
    pub fn load(name: &str, dir: &Path, device: Device) -> Result<Self> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).with_context(|| format!("cannot read {}", config_path.display()))?;
        let config: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", config_path.display()))?;
        let spec: ImageSpec = serde_json::from_value(config["tunebook_image_model"].clone()).with_context(|| format!("{}: tunebook_image_model is not a valid image model description", config_path.display()))?;
        let labels: Vec<String> = serde_json::from_value(config["labels"].clone()).with_context(|| format!("{}: 'labels' must be a list of names", config_path.display()))?;
        let task = Task::parse(config["problem_type"].as_str().unwrap_or("classify"))?;
        let mut model = Self::new(name, spec, labels, task, device)?;
        let weights = dir.join("model.safetensors");
        let tensors = crate::model::weights::hf::read_checkpoint(&weights)?;
        let mut vars = model.vs.variables();
        for (n, t) in &tensors {
            let Some(v) = vars.get_mut(n) else {
                bail!("{}: unexpected tensor '{n}' for this architecture", weights.display());
            };
            if v.size() != t.size() {
                bail!("{}: tensor '{n}' has shape {:?}, the architecture needs {:?}", weights.display(), t.size(), v.size());
            }
            tch::no_grad(|| v.copy_(t));
        }
        if let Some(missing) = vars.keys().find(|k| !tensors.iter().any(|(n, _)| n == *k)) {
            bail!("{}: tensor '{missing}' is missing", weights.display());
        }
        model.name = name.to_string();
        Ok(model)
    }

    /// Replaces the head with a freshly initialized one for `labels` (as
    /// PyTorch initializes a Linear layer): the way to reuse the trained
    /// layers below it for another task. What trains stays as it was.
    pub fn new_head(&mut self, labels: Vec<String>) -> Result<()> {
        if labels.len() < self.task.min_outputs() {
            bail!("a {} head needs at least {} labels, got {}", self.task.name(), self.task.min_outputs(), labels.len());
        }
        let (n, fan_in) = (labels.len() as i64, self.classifier.ws.size()[1]);
        let bound = 1.0 / (fan_in as f64).sqrt();
        let options = (self.classifier.ws.kind(), self.classifier.ws.device());
        tch::no_grad(|| {
            // set_data swaps the tensors under the same variables, so the
            // VarStore, its names and the trainable flags stay.
            self.classifier.ws.set_data(&Tensor::empty([n, fan_in], options).uniform_(-bound, bound));
            if let Some(b) = self.classifier.bs.as_mut() {
                b.set_data(&Tensor::empty([n], options).uniform_(-bound, bound));
            }
        });
        self.labels = labels;
        Ok(())
    }

    /// The module paths a selector can name.
    fn module_names(&self) -> Vec<String> {
        let stack = self.spec.arch.stack();
        let mut names = vec![stack.to_string()];
        names.extend((0..self.blocks.len()).map(|i| format!("{stack}.{i}")));
        names.push("classifier".to_string());
        names
    }

    fn matches(&self, selector: &str, name: &str) -> bool {
        let module = name.rsplit_once('.').map_or(name, |(m, _)| m);
        match selector {
            "all" => true,
            "head" => name.starts_with("classifier."),
            "bias" => name.ends_with(".bias"),
            _ if selector.contains('*') => glob_match(selector, module) || glob_match(selector, name),
            _ => {
                let ranged = super::adapt::freeze::expand_range(selector);
                ranged.iter().any(|s| name == s || name.starts_with(&format!("{s}.")))
            }
        }
    }
}

/// The image networks' selector kinds.
const IMAGE_KINDS: &[&str] = &["all", "head", "bias"];

impl Learner for ImageModel {
    /// Writes `model.safetensors` and `config.json` (architecture, labels,
    /// task) atomically into `dir`.
    fn save(&self, dir: &Path) -> Result<PathBuf> {
        let tensors: Vec<(String, Tensor)> = Learner::named_parameters(self).into_iter().map(|(n, t)| (n, t.detach().to_device(Device::Cpu))).collect();
        let config = serde_json::json!({
            "tunebook_image_model": self.spec,
            "labels": self.labels,
            "problem_type": self.task.problem_type().unwrap_or(self.task.name()),
            "version": env!("CARGO_PKG_VERSION"),
        });
        crate::model::save_folder(dir, |staging| {
            crate::model::weights::hf::write_safetensors(&tensors, &staging.join("model.safetensors")).context("cannot write the weights")?;
            std::fs::write(staging.join("config.json"), serde_json::to_string_pretty(&config)? + "\n")?;
            Ok(())
        })
    }

    fn layer_stack(&self) -> (&'static str, i64) {
        (self.spec.arch.stack(), self.blocks.len() as i64)
    }
    fn adopt_input_normalization(&mut self, normalize: Option<&(Vec<f32>, Vec<f32>)>) {
        // No normalization is a mean of 0 and a std of 1, which differs from "not trained yet".
        let channels = self.spec.input[0] as usize;
        self.spec.normalize = Some(normalize.cloned().unwrap_or_else(|| (vec![0.0; channels], vec![1.0; channels])));
    }
    fn forward(&self, inputs: &Inputs, train: bool) -> Result<Tensor> {
        let Inputs::Images(x) = inputs else {
            bail!("{} is an image model: it reads images, not {}", self.name, inputs.kind());
        };
        let size = x.size();
        if size.len() != 4 || size[1..] != self.spec.input[..] {
            bail!("{} takes images of {:?} (channels, height, width), got a batch of {:?}", self.name, self.spec.input, &size[1.min(size.len())..]);
        }
        let mut h = match self.spec.arch {
            ImageArch::Mlp => x.flatten(1, -1),
            ImageArch::Cnn => x.shallow_clone(),
        };
        for block in &self.blocks {
            h = match block {
                Block::Dense(l) => l.forward(&h).relu().dropout(self.spec.dropout, train),
                Block::Conv(c) => c.forward(&h).relu().max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false),
            };
        }
        if self.spec.arch == ImageArch::Cnn {
            h = h.flatten(1, -1).dropout(self.spec.dropout, train);
        }
        Ok(self.classifier.forward(&h))
    }
    super::learner::learner_fields!();
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let order = |n: &str| {
            let mut parts = n.split('.');
            let top = parts.next().unwrap_or("");
            let index = parts.next().and_then(|p| p.parse::<usize>().ok()).unwrap_or(0);
            (top == "classifier", index, n.ends_with(".bias"))
        };
        let mut vars: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        vars.sort_by_key(|(n, _)| order(n));
        vars
    }
    fn summary(&self) -> ModelSummary {
        let mut rows: Vec<ModuleCount> = Vec::new();
        for (name, t) in Learner::named_parameters(self) {
            let module = name.rsplit_once('.').map_or(name.as_str(), |(m, _)| m).to_string();
            let n = t.numel() as i64;
            if rows.last().is_none_or(|r| r.module != module) {
                rows.push(ModuleCount { module, trainable: 0, frozen: 0 });
            }
            let row = rows.last_mut().expect("pushed above");
            if t.requires_grad() {
                row.trainable += n;
            } else {
                row.frozen += n;
            }
        }
        ModelSummary { name: self.name.clone(), labels: self.labels.clone(), task: self.task, pooling: None, device: self.device(), rows }
    }
    fn layer_groups(&self) -> Vec<LayerGroup> {
        let stack = self.spec.arch.stack();
        let names = |prefix: &str| Learner::named_parameters(self).into_iter().map(|(n, _)| n).filter(|n| n.starts_with(prefix)).collect::<Vec<_>>();
        std::iter::once(LayerGroup { name: "head".into(), params: names("classifier.") })
            .chain((0..self.blocks.len()).rev().map(|i| LayerGroup { name: format!("{stack}.{i}"), params: names(&format!("{stack}.{i}.")) }))
            .collect()
    }
    fn select(&self, selector: &str) -> Result<Vec<String>> {
        let names: Vec<String> = Learner::named_parameters(self).into_iter().map(|(n, _)| n).collect();
        let mut chosen = Vec::new();
        for part in selector.split(',').map(str::trim) {
            let matched: Vec<String> = names.iter().filter(|n| self.matches(part, n)).cloned().collect();
            if matched.is_empty() {
                let mut candidates: Vec<String> = IMAGE_KINDS.iter().map(|k| k.to_string()).collect();
                candidates.extend(self.module_names());
                bail!(
                    "'{part}' names no module of this model; closest names: {}. A selector is a kind ({}), a module path such as {}.0, a range such as {}.0-1, or a glob",
                    closest(part, &candidates, 8).join(", "),
                    IMAGE_KINDS.join(", "),
                    self.spec.arch.stack(),
                    self.spec.arch.stack()
                );
            }
            for m in matched {
                if !chosen.contains(&m) {
                    chosen.push(m);
                }
            }
        }
        Ok(chosen)
    }
}

impl std::fmt::Display for ImageModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = Learner::summary(self);
        let [c, h, w] = self.spec.input;
        write!(
            f,
            "ImageModel {} ({} {:?} over {c}x{h}x{w}; {} {}; trainable {} of {} parameters; {:?})",
            self.name,
            self.spec.arch.stack(),
            self.spec.widths,
            self.task.name(),
            self.labels.join("/"),
            crate::numbers::group_digits(s.trainable()),
            crate::numbers::group_digits(s.total()),
            self.device()
        )
    }
}
