//! What a `fit` is told: the optimizer, the learning-rate plan, the loss,
//! and the optional parts (early stopping, checkpoints, unfreezing, layer
//! tracking).

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use super::checkpoint::CheckpointOptions;
use super::early_stopping::EarlyStopping;
use super::loss::Loss;
use super::optim::Method;
use super::schedule::Schedule;
use super::unfreeze::{LayerRates, Unfreezing};
use crate::data::DataLoader;

/// Weights of each class in the training loss.
#[derive(Debug, Clone, PartialEq)]
pub enum ClassWeights {
    /// `rows / (classes * rows of the class)`, from the training data (scikit-learn's "balanced").
    Balanced,
    /// One weight per class, in label order.
    Given(Vec<f64>),
}

impl ClassWeights {
    /// The weights as a tensor on `device`, one per class of the head;
    /// "balanced" counts the classes of `data`.
    pub fn tensor(&self, data: &DataLoader, classes: usize, device: Device) -> Result<Tensor> {
        let weights = match self {
            Self::Given(w) => {
                if w.len() != classes {
                    bail!("class_weights has {} weights but the head has {classes} classes; give one per class, in label order", w.len());
                }
                if w.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
                    bail!("class weights must be 0 or more");
                }
                w.clone()
            }
            Self::Balanced => {
                let counts = data.targets().label_counts(classes);
                let n = data.rows() as f64;
                counts.iter().map(|&c| if c == 0 { 0.0 } else { n / (classes as f64 * c as f64) }).collect()
            }
        };
        Ok(Tensor::from_slice(&weights).to_kind(Kind::Float).to_device(device))
    }
}

/// Settings of one `fit`.
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// The update rule.
    pub optimizer: Method,
    /// Peak learning rate.
    pub lr: f64,
    /// Weight decay (decoupled for AdamW, L2 otherwise; not applied to
    /// biases and LayerNorm weights).
    pub weight_decay: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Warmup, as a share of all steps.
    pub warmup: f64,
    /// Passes over the training data.
    pub epochs: usize,
    /// Stop after this many optimizer steps (all epochs together), if set.
    pub max_steps: Option<usize>,
    /// Clip the global gradient norm to this, if set.
    pub max_grad_norm: Option<f64>,
    /// Stop when validation stops improving, if set.
    pub early_stopping: Option<EarlyStopping>,
    /// Adam's betas and epsilon.
    pub betas: (f64, f64),
    /// Adam's epsilon.
    pub eps: f64,
    /// How the trainable part grows during the run, if it does.
    pub unfreezing: Option<Unfreezing>,
    /// Learning rates per layer group.
    pub layer_rates: LayerRates,
    /// The training loss; `None` takes the head's task's default
    /// (cross-entropy, binary cross-entropy or MSE).
    pub loss: Option<Loss>,
    /// Label smoothing of the cross-entropy (0 = none).
    pub label_smoothing: f64,
    /// The precision of the forward passes (autocast); weights, gradients
    /// and optimizer state stay fp32.
    pub precision: crate::runtime::precision::Precision,
    /// fp16's loss scaler settings (`torch.amp.GradScaler`'s defaults).
    pub loss_scaler: super::loss_scale::ScalerConfig,
    /// Gradient checkpointing of the transformer blocks
    /// (`Learner::set_checkpointing`) for this run.
    pub checkpointing: bool,
    /// Class weights of the training loss, if any.
    pub class_weights: Option<ClassWeights>,
    /// Batches whose gradients are summed into one optimizer step.
    pub accumulate: usize,
    /// Reseeds dropout from this at every epoch, so that a resumed run
    /// repeats an uninterrupted one; `None` leaves the generator alone.
    pub seed: Option<u64>,
    /// Write a checkpoint after every epoch.
    pub checkpoint: Option<CheckpointOptions>,
    /// Continue from the latest checkpoint in this folder.
    pub resume: Option<std::path::PathBuf>,
    /// Also evaluate every this many optimizer steps (each epoch ends with
    /// an evaluation anyway).
    pub eval_every: Option<usize>,
    /// Record per layer group, every epoch, the weight change and the mean
    /// gradient norm (keeps a copy of the starting weights).
    pub track_layers: bool,
    /// Write TensorBoard event files of the run into this folder.
    pub tensorboard: Option<std::path::PathBuf>,
    /// Show what the model does now before training and after every
    /// evaluation (a language model's answers to fixed prompts).
    pub samples: Option<SampleHook>,
}

/// Produces samples of what a model does now: `(prompt, output)` pairs.
/// The caller builds it (generation is above training in the layers);
/// `fit` calls it with the model it trains and reports the result.
#[derive(Clone)]
pub struct SampleHook(pub std::sync::Arc<dyn Fn(&dyn crate::model::Learner) -> anyhow::Result<Vec<(String, String)>>>);

impl std::fmt::Debug for SampleHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SampleHook")
    }
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            optimizer: Method::AdamW,
            lr: 2e-5,
            weight_decay: 0.01,
            schedule: Schedule::Linear,
            warmup: 0.1,
            epochs: 3,
            max_steps: None,
            max_grad_norm: Some(1.0),
            early_stopping: None,
            betas: (0.9, 0.999),
            eps: 1e-8,
            unfreezing: None,
            layer_rates: LayerRates::default(),
            loss: None,
            label_smoothing: 0.0,
            precision: Default::default(),
            loss_scaler: Default::default(),
            checkpointing: false,
            class_weights: None,
            accumulate: 1,
            seed: None,
            checkpoint: None,
            resume: None,
            eval_every: None,
            samples: None,
            track_layers: false,
            tensorboard: None,
        }
    }
}

impl FitOptions {
    /// The settings a run is compared by, as TensorBoard's HParams table
    /// shows them (`batch_size` is the loader's).
    pub fn hparams(&self, batch_size: usize) -> std::collections::BTreeMap<String, super::tensorboard::HParam> {
        use super::tensorboard::HParam::{Flag, Number, Text};
        let optimizer = match self.optimizer {
            Method::AdamW => "adamw",
            Method::Adam => "adam",
            Method::Sgd { .. } => "sgd",
        };
        let mut h = std::collections::BTreeMap::new();
        h.insert("optimizer".into(), Text(optimizer.into()));
        h.insert("lr".into(), Number(self.lr));
        h.insert("weight_decay".into(), Number(self.weight_decay));
        h.insert("schedule".into(), Text(format!("{:?}", self.schedule).to_lowercase()));
        h.insert("warmup".into(), Number(self.warmup));
        h.insert("epochs".into(), Number(self.epochs as f64));
        h.insert("batch_size".into(), Number(batch_size as f64));
        h.insert("accumulate".into(), Number(self.accumulate as f64));
        h.insert("max_grad_norm".into(), Number(self.max_grad_norm.unwrap_or(0.0)));
        h.insert("label_smoothing".into(), Number(self.label_smoothing));
        h.insert("precision".into(), Text(self.precision.name().into()));
        h.insert("early_stopping".into(), Flag(self.early_stopping.is_some()));
        if let Some(n) = self.max_steps {
            h.insert("max_steps".into(), Number(n as f64));
        }
        h
    }
}
