//! Image networks: small ones built from options for teaching (an MLP,
//! `layers.N`, and a CNN, `features.N`: 3x3 convolution, ReLU, 2x2
//! max-pool, each with a `classifier` head), and ImageNet backbones with
//! their pretrained weights (MobileNetV2 and EfficientNet-Lite0, in
//! `arch/`) under a head for the task. They train with the same loop,
//! freezing and charts as the text models, and save as safetensors (the
//! backbones under their checkpoints' names, which torchvision's model
//! loads) with a `config.json` that `ImageModel::load` reads back.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Device, Tensor};

use super::arch::efficientnet_lite::{self, EfficientNetLite};
use super::arch::mobilenet_v2::{self, MobileNetV2};
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
    /// torchvision's MobileNetV2.
    #[serde(rename = "mobilenet_v2")]
    MobileNetV2,
    /// EfficientNet-Lite0.
    #[serde(rename = "efficientnet_lite0")]
    EfficientNetLite0,
}

impl ImageArch {
    /// Valid names.
    pub const NAMES: &'static [&'static str] = &["mlp", "cnn", "mobilenet_v2", "efficientnet_lite0"];
    /// The architectures built from options (`image_model`).
    pub const SMALL: &'static [&'static str] = &["mlp", "cnn"];

    /// Parses an architecture's name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "mlp" => Ok(Self::Mlp),
            "cnn" => Ok(Self::Cnn),
            "mobilenet_v2" => Ok(Self::MobileNetV2),
            "efficientnet_lite0" => Ok(Self::EfficientNetLite0),
            _ => bail!("unknown image architecture '{s}'; valid: {}", Self::NAMES.join(", ")),
        }
    }

    /// The name `parse` accepts.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The name of its stack of layers (`layers`, `features` or `_blocks`).
    pub fn stack(self) -> &'static str {
        match self {
            Self::Mlp => "layers",
            Self::Cnn | Self::MobileNetV2 => "features",
            Self::EfficientNetLite0 => "_blocks",
        }
    }

    /// Whether it is an ImageNet backbone (its own layers, pretrained weights).
    pub fn is_backbone(self) -> bool {
        matches!(self, Self::MobileNetV2 | Self::EfficientNetLite0)
    }

    /// The head's module path, as the checkpoint names it.
    pub fn head_path(self) -> &'static str {
        match self {
            Self::Mlp | Self::Cnn => "classifier",
            Self::MobileNetV2 => "classifier.1",
            Self::EfficientNetLite0 => "_fc",
        }
    }

    /// The per-channel mean and std its pretrained weights expect on 0-1
    /// pixels: torchvision's ImageNet statistics for MobileNetV2, and for
    /// EfficientNet-Lite0 the (x - 127) / 128 of Google's TensorFlow Lite
    /// builder (`efficientnet_lite_builder.py`, MEAN_RGB 127, STDDEV_RGB 128).
    pub fn pretrained_normalization(self) -> Option<(Vec<f32>, Vec<f32>)> {
        match self {
            Self::MobileNetV2 => Some((vec![0.485, 0.456, 0.406], vec![0.229, 0.224, 0.225])),
            Self::EfficientNetLite0 => Some((vec![127.0 / 255.0; 3], vec![128.0 / 255.0; 3])),
            _ => None,
        }
    }
}

/// The 1,000 ImageNet-1k class names in index order, as torchvision 0.26.0
/// lists them (`torchvision/models/_meta.py`, `_IMAGENET_CATEGORIES`).
pub fn imagenet_classes() -> Vec<String> {
    serde_json::from_str(include_str!("../../assets/imagenet_classes.json")).expect("the embedded class list is valid JSON")
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

/// The network below the head.
#[derive(Debug)]
enum Net {
    /// The small networks' layers.
    Stack(Vec<Block>),
    /// MobileNetV2's features.
    MobileNet(MobileNetV2),
    /// EfficientNet-Lite0's stem, blocks and head convolution.
    Lite(EfficientNetLite),
}

/// A small image classifier or regressor.
#[derive(Debug)]
pub struct ImageModel {
    /// What the user called it.
    pub name: String,
    /// Its architecture.
    pub spec: ImageSpec,
    vs: nn::VarStore,
    net: Net,
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
        let (net, features) = match spec.arch {
            ImageArch::MobileNetV2 | ImageArch::EfficientNetLite0 => {
                if c != 3 || h < 32 || w < 32 {
                    bail!("{} reads colour images of at least 32x32 pixels ([3, h, w]), got {:?}; load grey images as RGB (they are converted) and give size: 64 or more", spec.arch.name(), spec.input);
                }
                match spec.arch {
                    ImageArch::MobileNetV2 => (Net::MobileNet(MobileNetV2::new(&root)), mobilenet_v2::FEATURES),
                    _ => (Net::Lite(EfficientNetLite::new(&root)), efficientnet_lite::FEATURES),
                }
            }
            ImageArch::Mlp => {
                let stack = &root / spec.arch.stack();
                let mut blocks = Vec::new();
                let mut width = c * h * w;
                for (i, &out) in spec.widths.iter().enumerate() {
                    check_layer_size(&format!("layers.{i}"), width, out)?;
                    blocks.push(Block::Dense(nn::linear(&stack / i, width, out, Default::default())));
                    width = out;
                }
                (Net::Stack(blocks), width)
            }
            ImageArch::Cnn => {
                let stack = &root / spec.arch.stack();
                let mut blocks = Vec::new();
                let (mut channels, mut side_h, mut side_w) = (c, h, w);
                for (i, &out) in spec.widths.iter().enumerate() {
                    if side_h < 2 || side_w < 2 {
                        bail!("{h}x{w} images are too small for {} convolution blocks (each halves the size); use at most {i}", spec.widths.len());
                    }
                    blocks.push(Block::Conv(nn::conv2d(&stack / i, channels, out, 3, nn::ConvConfig { padding: 1, ..Default::default() })));
                    (channels, side_h, side_w) = (out, side_h / 2, side_w / 2);
                }
                (Net::Stack(blocks), channels * side_h * side_w)
            }
        };
        check_layer_size("classifier", features, labels.len() as i64)?;
        let head = spec.arch.head_path().split('.').fold(root.clone(), |p, part| p / part);
        let classifier = nn::linear(head, features, labels.len() as i64, Default::default());
        Ok(Self { name: name.to_string(), spec, vs, net, classifier, labels, task })
    }

    /// An ImageNet backbone with its pretrained weights from `file` (a
    /// `torch.save` state dict with the checkpoint's names) and its 1,000
    /// ImageNet classes, for `[3, size, size]` images. Loading reports what
    /// it read; `new_head` then adapts it to a task.
    pub fn pretrained(name: &str, arch: ImageArch, file: &Path, size: i64, device: Device) -> Result<Self> {
        let spec = ImageSpec { arch, input: [3, size, size], widths: Vec::new(), dropout: 0.2, normalize: arch.pretrained_normalization() };
        let mut model = Self::new(name, spec, imagenet_classes(), Task::Classify, device)?;
        let tensors = crate::model::weights::hf::read_checkpoint(file)?;
        model.copy_weights(tensors, &file.display().to_string())?;
        Ok(model)
    }

}

impl ImageArch {
    /// The architecture a state dict's names belong to.
    pub fn of_state_dict(file: &Path) -> Result<ImageArch> {
        let tensors = crate::model::weights::hf::read_checkpoint(file)?;
        let has = |n: &str| tensors.iter().any(|(k, _)| k == n);
        if has("features.18.0.weight") && has("classifier.1.weight") {
            return Ok(ImageArch::MobileNetV2);
        }
        if has("_conv_stem.weight") && has("_blocks.15._project_conv.weight") {
            return Ok(ImageArch::EfficientNetLite0);
        }
        bail!("{} is a state dict of no architecture Tunebook builds from a .pth file (MobileNetV2 as torchvision names it, EfficientNet-Lite0)", file.display())
    }
}

impl ImageModel {

    /// Copies checkpoint tensors into the variables and the BatchNorm
    /// counters; every variable must be there with its shape.
    fn copy_weights(&mut self, tensors: Vec<(String, Tensor)>, source: &str) -> Result<()> {
        let vars = self.vs.variables();
        let counters: std::collections::HashMap<String, &super::arch::conv::BatchNorm> = self.batch_norms().into_iter().map(|b| (format!("{}.num_batches_tracked", b.path()), b)).collect();
        let mut seen = std::collections::HashSet::new();
        for (n, t) in &tensors {
            if let Some(bn) = counters.get(n) {
                bn.set_batches_tracked(t.int64_value(&[]));
                continue;
            }
            let Some(v) = vars.get(n) else {
                bail!("{source}: unexpected tensor '{n}' for {}", self.spec.arch.name());
            };
            crate::model::weights::hf::copy_checked(n, v, t, "checkpoint").map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
            seen.insert(n.as_str());
        }
        if let Some(missing) = vars.keys().find(|k| !seen.contains(k.as_str())) {
            bail!("{source}: tensor '{missing}' is missing");
        }
        Ok(())
    }

    /// Every BatchNorm of a backbone, in order (none for the small networks).
    fn batch_norms(&self) -> Vec<&super::arch::conv::BatchNorm> {
        match &self.net {
            Net::Stack(_) => Vec::new(),
            Net::MobileNet(m) => m.batch_norms(),
            Net::Lite(l) => l.batch_norms(),
        }
    }

    /// Whether a variable is a BatchNorm running statistic (a buffer, not a parameter).
    fn is_buffer(name: &str) -> bool {
        name.ends_with(".running_mean") || name.ends_with(".running_var")
    }

    /// The blocks that freezing, `trainable_layers` and gradual unfreezing
    /// count, bottom up: each a name and the module prefixes it covers.
    fn units(&self) -> Vec<(String, Vec<String>)> {
        let stack = self.spec.arch.stack();
        let numbered = |n: usize| (0..n).map(|i| (format!("{stack}.{i}"), vec![format!("{stack}.{i}.")])).collect::<Vec<_>>();
        match &self.net {
            Net::Stack(blocks) => numbered(blocks.len()),
            Net::MobileNet(m) => numbered(m.depth()),
            Net::Lite(l) => {
                let mut units = vec![("stem".to_string(), vec!["_conv_stem.".to_string(), "_bn0.".to_string()])];
                units.extend(numbered(l.depth()));
                units.push(("top".to_string(), vec!["_conv_head.".to_string(), "_bn1.".to_string()]));
                units
            }
        }
    }

    /// The features under the head, `[n, features]`.
    fn features(&self, x: &Tensor, train: bool) -> Tensor {
        match &self.net {
            Net::MobileNet(m) => m.forward(x, train).dropout(self.spec.dropout, train),
            Net::Lite(l) => l.forward(x, train).dropout(self.spec.dropout, train),
            Net::Stack(blocks) => {
                let mut h = match self.spec.arch {
                    ImageArch::Mlp => x.flatten(1, -1),
                    _ => x.shallow_clone(),
                };
                for block in blocks {
                    h = match block {
                        Block::Dense(l) => l.forward(&h).relu().dropout(self.spec.dropout, train),
                        Block::Conv(c) => c.forward(&h).relu().max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false),
                    };
                }
                if self.spec.arch == ImageArch::Cnn {
                    h = h.flatten(1, -1).dropout(self.spec.dropout, train);
                }
                h
            }
        }
    }

    /// A backbone's last feature maps `[n, channels, h', w']` and the logits
    /// computed from them (for Grad-CAM); `None` for the small networks.
    pub fn feature_maps_and_logits(&self, x: &Tensor) -> Option<(Tensor, Tensor)> {
        let maps = match &self.net {
            Net::MobileNet(m) => m.feature_maps(x, false),
            Net::Lite(l) => l.feature_maps(x, false),
            Net::Stack(_) => return None,
        };
        let logits = maps.adaptive_avg_pool2d([1, 1]).flatten(1, -1).apply(&self.classifier);
        Some((maps, logits))
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
        model.copy_weights(tensors, &weights.display().to_string())?;
        model.name = name.to_string();
        Ok(model)
    }

    /// A new head for `labels` and `task` (as `new_head`), for a backbone
    /// loaded with ImageNet's head.
    pub fn adapt_head(&mut self, labels: Vec<String>, task: Task) -> Result<()> {
        if task == Task::Tokens || task == Task::NextToken {
            bail!("an image model classifies (classify), tags (multi_label) or scores (regression) whole images, not {}", task.name());
        }
        self.task = task;
        self.new_head(labels)
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
        let mut names = vec![self.spec.arch.stack().to_string()];
        let mut modules: Vec<String> = Learner::named_parameters(self).into_iter().map(|(n, _)| n.rsplit_once('.').map_or(n.clone(), |(m, _)| m.to_string())).collect();
        modules.dedup();
        names.extend(self.units().into_iter().map(|(u, _)| u));
        names.extend(modules);
        names
    }

    fn matches(&self, selector: &str, name: &str) -> bool {
        let module = name.rsplit_once('.').map_or(name, |(m, _)| m);
        let head = format!("{}.", self.spec.arch.head_path());
        let unit = |u: &str| self.units().into_iter().find(|(n, _)| n == u).map(|(_, prefixes)| prefixes.iter().any(|p| name.starts_with(p.as_str())));
        match selector {
            "all" => true,
            "head" => name.starts_with(&head),
            "backbone" => !name.starts_with(&head),
            "bias" => name.ends_with(".bias"),
            "norm" => self.batch_norms().iter().any(|b| module == b.path()),
            _ if selector.contains('*') => glob_match(selector, module) || glob_match(selector, name),
            _ => {
                if let Some(hit) = unit(selector) {
                    return hit;
                }
                let ranged = super::adapt::freeze::expand_range(selector);
                ranged.iter().any(|s| name == s || name.starts_with(&format!("{s}.")) || unit(s).unwrap_or(false))
            }
        }
    }
}

/// The image networks' selector kinds.
const IMAGE_KINDS: &[&str] = &["all", "head", "backbone", "bias", "norm"];

impl Learner for ImageModel {
    /// Writes `model.safetensors` and `config.json` (architecture, labels,
    /// task, input shape, normalization) atomically into `dir`. A
    /// backbone's tensors keep its checkpoint's names, BatchNorm running
    /// statistics and `num_batches_tracked` included, so torchvision's
    /// model loads them strictly once its classifier has the head's size.
    fn save(&self, dir: &Path) -> Result<PathBuf> {
        let mut tensors: Vec<(String, Tensor)> = self.vs.variables().into_iter().map(|(n, t)| (n, t.detach().to_device(Device::Cpu))).collect();
        for bn in self.batch_norms() {
            tensors.push((format!("{}.num_batches_tracked", bn.path()), Tensor::from(bn.batches_tracked())));
        }
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let [_, h, w] = self.spec.input;
        let config = serde_json::json!({
            "tunebook_image_model": self.spec,
            "architecture": self.spec.arch.name(),
            "labels": self.labels,
            "problem_type": self.task.problem_type().unwrap_or(self.task.name()),
            "image_size": [h, w],
            "image_mean": self.spec.normalize.as_ref().map(|n| n.0.clone()),
            "image_std": self.spec.normalize.as_ref().map(|n| n.1.clone()),
            "version": env!("CARGO_PKG_VERSION"),
        });
        crate::model::save_folder(dir, |staging| {
            crate::model::weights::hf::write_safetensors(&tensors, &staging.join("model.safetensors")).context("cannot write the weights")?;
            std::fs::write(staging.join("config.json"), serde_json::to_string_pretty(&config)? + "\n")?;
            Ok(())
        })
    }

    fn layer_stack(&self) -> (&'static str, i64) {
        (self.spec.arch.stack(), self.units().len() as i64)
    }
    /// The head and the top `n` blocks of `units` (the bottom `-n` when
    /// negative); for EfficientNet-Lite0 the top block is its head
    /// convolution and the bottom one its stem.
    fn trainable_layers(&mut self, n: i64) -> Result<usize> {
        let units = self.units();
        let layers = units.len() as i64;
        if n == 0 || n.abs() > layers {
            bail!("trainable_layers({n}): this model has {layers} blocks; give 1 to {layers} (the last n) or -1 to -{layers} (the first n)");
        }
        let range = if n > 0 { (layers - n)..layers } else { 0..(-n) };
        let mut selectors = vec!["head".to_string()];
        selectors.extend(range.map(|i| units[i as usize].0.clone()));
        self.train_only(&selectors)
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
        Ok(self.classifier.forward(&self.features(x, train)))
    }
    super::learner::learner_fields!();
    /// The trained parameters, bottom up and the head last; BatchNorm
    /// running statistics are `buffers`.
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let units = self.units();
        let head = format!("{}.", self.spec.arch.head_path());
        let order = |n: &str| {
            let unit = units.iter().position(|(_, prefixes)| prefixes.iter().any(|p| n.starts_with(p.as_str()))).unwrap_or(usize::MAX);
            (n.starts_with(&head), unit, super::summary::natural_key(n))
        };
        let mut vars: Vec<(String, Tensor)> = self.vs.variables().into_iter().filter(|(n, _)| !Self::is_buffer(n)).collect();
        vars.sort_by_cached_key(|(n, _)| order(n));
        vars
    }
    fn buffers(&self) -> Vec<(String, Tensor)> {
        let mut vars: Vec<(String, Tensor)> = self.vs.variables().into_iter().filter(|(n, _)| Self::is_buffer(n)).collect();
        vars.sort_by_cached_key(|(n, _)| super::summary::natural_key(n));
        vars
    }
    fn summary(&self) -> ModelSummary {
        let mut rows: Vec<ModuleCount> = Vec::new();
        let units = self.units();
        let head = format!("{}.", self.spec.arch.head_path());
        for (name, t) in Learner::named_parameters(self) {
            // Backbones count per block (19 rows, not 150 modules); the small networks per layer.
            let module = match units.iter().find(|(_, prefixes)| prefixes.iter().any(|p| name.starts_with(p.as_str()))) {
                Some((unit, _)) if self.spec.arch.is_backbone() => unit.clone(),
                _ if name.starts_with(&head) => self.spec.arch.head_path().to_string(),
                _ => name.rsplit_once('.').map_or(name.as_str(), |(m, _)| m).to_string(),
            };
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
        let norms = self.batch_norms();
        let batch_norm = (!norms.is_empty()).then(|| super::summary::BatchNormCount { layers: norms.len(), frozen: norms.iter().filter(|b| b.statistics_frozen()).count() });
        ModelSummary { name: self.name.clone(), labels: self.labels.clone(), task: self.task, pooling: None, device: self.device(), rows, batch_norm, storage: Default::default() }
    }
    fn layer_groups(&self) -> Vec<LayerGroup> {
        let params: Vec<String> = Learner::named_parameters(self).into_iter().map(|(n, _)| n).collect();
        let head = format!("{}.", self.spec.arch.head_path());
        std::iter::once(LayerGroup { name: "head".into(), params: params.iter().filter(|n| n.starts_with(&head)).cloned().collect() })
            .chain(self.units().into_iter().rev().map(|(unit, prefixes)| LayerGroup { name: unit, params: params.iter().filter(|n| prefixes.iter().any(|p| n.starts_with(p.as_str()))).cloned().collect() }))
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
        let arch = if self.spec.arch.is_backbone() { self.spec.arch.name().to_string() } else { format!("{} {:?}", self.spec.arch.stack(), self.spec.widths) };
        let labels = if self.labels.len() > 12 { format!("{} labels ({}, ...)", self.labels.len(), self.labels[..3].join("/")) } else { self.labels.join("/") };
        write!(
            f,
            "ImageModel {} ({arch} over {c}x{h}x{w}; {} {labels}; trainable {} of {} parameters; {:?})",
            self.name,
            self.task.name(),
            crate::numbers::group_digits(s.trainable()),
            crate::numbers::group_digits(s.total()),
            self.device()
        )
    }
}
