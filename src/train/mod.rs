//! The training loop: optimizer, schedule, loss, evaluation each epoch, and
//! events that the command line and the notebook render.

pub mod checkpoint;
pub mod early_stopping;
pub mod history;
pub mod layer_stats;
pub mod loss;
pub mod lr_find;
pub mod metrics;
pub mod optim;
pub mod schedule;
pub mod unfreeze;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use crate::data::{DataLoader, TokenizedDataset};
use crate::model::{Learner, Model};
use crate::task::Task;
pub use loss::Loss;
pub use early_stopping::{EarlyStopping, Monitor};
pub use optim::{Method, Optimizer};
pub use schedule::Schedule;
pub use checkpoint::CheckpointOptions;
pub use lr_find::{lr_find, LrFind, LrFindOptions};
pub use metrics::{Confusion, MultiLabelCounts, RegressionScores};
pub use unfreeze::{LayerRates, Unfreezing};
pub use layer_stats::LayerStats;

/// Weights of each class in the training loss.
#[derive(Debug, Clone, PartialEq)]
pub enum ClassWeights {
    /// `rows / (classes * rows of the class)`, from the training data (scikit-learn's "balanced").
    Balanced,
    /// One weight per class, in label order.
    Given(Vec<f64>),
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
            class_weights: None,
            accumulate: 1,
            seed: None,
            checkpoint: None,
            resume: None,
            eval_every: None,
            track_layers: false,
        }
    }
}

/// The loss and the task's metrics over a dataset.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalResult {
    /// Mean loss: cross-entropy, binary cross-entropy or MSE, by task.
    pub loss: f64,
    /// The task evaluated.
    #[serde(default)]
    pub task: Task,
    /// Classification: the share of rows whose top class is the label;
    /// multi-label: the share with every label right.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Macro-averaged F1 (over classes, or over labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f1: Option<f64>,
    /// Regression: mean squared error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mse: Option<f64>,
    /// Regression: mean absolute error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mae: Option<f64>,
    /// Regression: the coefficient of determination (1 is perfect, 0 is
    /// no better than predicting the mean).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r2: Option<f64>,
    /// Rows evaluated.
    pub rows: usize,
}

impl EvalResult {
    /// A metric by name (`loss`, `accuracy`, `f1`, `mse`, `mae`, `r2`),
    /// when the task has it.
    pub fn metric(&self, name: &str) -> Option<f64> {
        match name {
            "loss" => Some(self.loss),
            "accuracy" => self.accuracy,
            "f1" => self.f1,
            "mse" => self.mse,
            "mae" => self.mae,
            "r2" => self.r2,
            _ => None,
        }
    }

    /// The task's metrics with their names, the loss first.
    pub fn metrics(&self) -> Vec<(&'static str, f64)> {
        std::iter::once(("loss", self.loss)).chain(self.task.metric_names().iter().filter_map(|&n| self.metric(n).map(|v| (n, v)))).collect()
    }

    /// The loss and the task's headline metric, each name after `prefix`:
    /// `val_loss 0.4102, val_accuracy 0.8125` (with F1 for multi-label
    /// data, MAE and R² for regression).
    pub fn summary(&self, prefix: &str) -> String {
        let shown: &[&str] = match self.task {
            Task::Classify => &["loss", "accuracy"],
            Task::MultiLabel | Task::Tokens => &["loss", "accuracy", "f1"],
            Task::Regression => &["loss", "mae", "r2"],
        };
        shown.iter().filter_map(|&n| self.metric(n).map(|v| format!("{prefix}{n} {v:.4}"))).collect::<Vec<_>>().join(", ")
    }
}

/// What one epoch produced.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Validation result, when a validation loader was given.
    pub val: Option<EvalResult>,
    /// Seconds since the run started.
    pub elapsed: f64,
}

/// A validation result in the middle of an epoch (`eval_every`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepEval {
    /// The optimizer step after which it ran.
    pub step: usize,
    /// 1-based epoch.
    pub epoch: usize,
    /// The result.
    pub result: EvalResult,
}

/// One optimizer step's loss and learning rate.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepRecord {
    /// 1-based step number.
    pub step: usize,
    /// Training loss of the batch.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
}

/// The record of a finished (or interrupted) run.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct TrainRun {
    /// Per-epoch results.
    pub epochs: Vec<EpochRecord>,
    /// Per-step losses and learning rates.
    pub steps: Vec<StepRecord>,
    /// Evaluations between epoch ends (`eval_every`).
    #[serde(default)]
    pub evaluations: Vec<StepEval>,
    /// Parameters that trained.
    pub trainable_params: i64,
    /// All parameters.
    pub total_params: i64,
    /// Training rows per second, evaluation time excluded.
    pub samples_per_sec: f64,
    /// Seconds the run took.
    pub seconds: f64,
    /// Seconds spent training (evaluation excluded).
    pub train_seconds: f64,
    /// Bytes of optimizer state at the end (Adam's moments of the
    /// parameters that were updated).
    pub optimizer_state_bytes: i64,
    /// Peak resident memory of the process during the run, where the
    /// system reports it.
    pub peak_rss_bytes: Option<u64>,
    /// Whether the run was stopped by an interrupt.
    pub interrupted: bool,
    /// The epoch whose validation result was best under early stopping.
    pub best_epoch: Option<usize>,
    /// The epoch after which early stopping ended the run.
    pub stopped_early_at: Option<usize>,
    /// Whether the best epoch's weights were put back at the end.
    pub restored_best: bool,
    /// Device it ran on.
    pub device: String,
    /// Per layer group and epoch, weight change and gradient norm (with `track_layers`).
    #[serde(default)]
    pub layers: Vec<LayerStats>,
}

impl TrainRun {
    /// The last epoch's validation result.
    pub fn final_val(&self) -> Option<EvalResult> {
        self.epochs.iter().rev().find_map(|e| e.val)
    }

    /// The best validation accuracy of any epoch (none for regression).
    pub fn best_val_accuracy(&self) -> Option<f64> {
        self.epochs.iter().filter_map(|e| e.val.and_then(|v| v.accuracy)).reduce(f64::max)
    }
}

impl std::fmt::Display for TrainRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Run: {} epochs, {} steps in {:.1}s ({:.1} samples/s) on {}", self.epochs.len(), self.steps.len(), self.seconds, self.samples_per_sec, self.device)?;
        if let Some(v) = self.final_val() {
            write!(f, "; {}", v.summary("val_"))?;
        }
        if self.interrupted {
            write!(f, " (interrupted)")?;
        }
        Ok(())
    }
}

/// What the loop reports while it runs.
#[derive(Debug, Clone)]
pub enum TrainEvent {
    /// Before the first step.
    Start {
        /// Epochs planned.
        epochs: usize,
        /// Batches per epoch.
        steps_per_epoch: usize,
        /// Optimizer steps planned in all.
        total_steps: usize,
        /// Parameters that train.
        trainable_params: i64,
        /// All parameters.
        total_params: i64,
        /// Device name.
        device: String,
        /// The learning rate of each layer group, top first, when they differ.
        lr_groups: Vec<(String, f64)>,
    },
    /// The trainable part changed (gradual unfreezing), before the epoch's first step.
    Unfrozen {
        /// 1-based epoch.
        epoch: usize,
        /// The groups that train now, top first.
        groups: Vec<String>,
        /// Parameters that train now.
        trainable_params: i64,
    },
    /// After each optimizer step.
    Step {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step within the epoch.
        step_in_epoch: usize,
        /// The step's record.
        record: StepRecord,
    },
    /// Validation started (it can take a while).
    Evaluating {
        /// 1-based epoch.
        epoch: usize,
    },
    /// After each epoch's validation.
    EpochEnd(EpochRecord),
    /// A validation in the middle of an epoch (`eval_every`).
    Evaluated(StepEval),
    /// Early stopping's outcome, when it stopped the run or put back the best weights.
    EarlyStopping {
        /// The epoch after which it stopped the run, if it did.
        stopped_at: Option<usize>,
        /// The best epoch.
        best_epoch: usize,
        /// Whether the best epoch's weights were put back.
        restored: bool,
    },
    /// The loop stopped at an interrupt; the model keeps its weights so far.
    Interrupted {
        /// Steps completed.
        steps: usize,
    },
    /// Something the user should know (a one-class validation set, ...).
    Warning(String),
    /// A checkpoint was written.
    Checkpoint {
        /// 1-based epoch.
        epoch: usize,
        /// Its folder.
        path: String,
    },
    /// The run continued from a checkpoint.
    Resumed {
        /// Epochs already done.
        epoch: usize,
        /// Steps already taken.
        step: usize,
    },
    /// The run finished.
    Done(TrainRun),
}

impl TrainEvent {
    /// A line for the events that are only reported (warnings, checkpoints,
    /// resuming), for renderers.
    pub fn note(&self) -> Option<String> {
        match self {
            Self::Warning(text) => Some(format!("warning: {text}")),
            Self::Checkpoint { epoch, path } => Some(format!("epoch {epoch}: checkpoint saved to {path}")),
            Self::Resumed { epoch, step } => Some(format!("resumed after epoch {epoch} (step {step})")),
            Self::Evaluated(e) => Some(format!("step {}: {}", e.step, e.result.summary("val_"))),
            _ => None,
        }
    }

    /// The learning rate of each layer group, in words (for renderers).
    pub fn lr_groups_summary(lr_groups: &[(String, f64)]) -> Option<String> {
        (!lr_groups.is_empty()).then(|| format!("learning rates: {}", lr_groups.iter().map(|(g, lr)| format!("{g} {lr:.2e}")).collect::<Vec<_>>().join(", ")))
    }

    /// What gradual unfreezing opened, in words (for renderers).
    pub fn unfrozen_summary(epoch: usize, groups: &[String], trainable_params: i64) -> String {
        let what = match groups {
            [only] => format!("{only} only"),
            _ => format!("{} groups ({} down to {})", groups.len(), groups[0], groups[groups.len() - 1]),
        };
        format!("epoch {epoch}: training {what}, {} parameters", crate::model::group_digits(trainable_params))
    }

    /// What early stopping did, in words (for renderers).
    pub fn early_stopping_summary(stopped_at: Option<usize>, best_epoch: usize, restored: bool) -> String {
        let stopped = match stopped_at {
            Some(e) => format!("early stopping after epoch {e}: no improvement since epoch {best_epoch}"),
            None => format!("best epoch: {best_epoch}"),
        };
        if restored { format!("{stopped}; restored the weights of epoch {best_epoch}") } else { stopped }
    }
}

/// Receives training events (a progress bar, a notebook display, a test).
pub trait TrainObserver {
    /// Called for each event, in order.
    fn on_event(&mut self, event: &TrainEvent);
}

/// An observer that ignores everything.
pub struct Silent;

impl TrainObserver for Silent {
    fn on_event(&mut self, _: &TrainEvent) {}
}

/// Checked between batches; set it from another thread (Ctrl-C, a kernel
/// interrupt) to stop training with the weights learned so far.
pub type StopFlag = Arc<AtomicBool>;

/// Every parameter the run may update (frozen ones too: unfreezing can open
/// them later, and the optimizer skips them while frozen), with its decay
/// and rate multiplier.
fn param_specs(model: &dyn Learner, weight_decay: f64, scales: &std::collections::HashMap<String, f64>) -> Vec<optim::ParamSpec> {
    model
        .named_parameters()
        .into_iter()
        .map(|(name, t)| {
            // The usual convention: no decay on biases and LayerNorm weights.
            let no_decay = name.ends_with(".bias") || name.contains("LayerNorm") || name.contains("layer_norm");
            let lr_scale = scales.get(&name).copied().unwrap_or(1.0);
            let name = name.clone();
            optim::ParamSpec { name, tensor: t, weight_decay: if no_decay { 0.0 } else { weight_decay }, lr_scale }
        })
        .collect()
}

/// Applies the unfreezing schedule for `epoch`: a parameter trains when it
/// did at the start and its group is open. Returns the open groups' names
/// when that changed the model.
fn apply_unfreezing(model: &mut dyn Learner, schedule: Unfreezing, epoch: usize, start_mask: &[(String, bool)], groups: &[crate::model::LayerGroup]) -> Option<Vec<String>> {
    let open = schedule.open_groups(epoch, groups.len());
    let open_names: std::collections::HashSet<&str> = groups[..open].iter().flat_map(|g| g.params.iter().map(String::as_str)).collect();
    let before = model.trainable_mask();
    let mask: Vec<(String, bool)> = start_mask.iter().map(|(n, t)| (n.clone(), *t && open_names.contains(n.as_str()))).collect();
    model.set_trainable_mask(&mask);
    (before != mask || epoch == 1).then(|| groups[..open].iter().map(|g| g.name.clone()).collect())
}

/// Trains `model` on `train`, evaluating on `val` after every epoch.
pub fn fit(
    model: &mut dyn Learner,
    train: &DataLoader,
    val: Option<&DataLoader>,
    opts: &FitOptions,
    observer: &mut dyn TrainObserver,
    stop: &StopFlag,
) -> Result<TrainRun> {
    check_labels(model, train)?;
    if let Some(v) = val {
        check_labels(model, v)?;
    }
    adopt_label_names(model, train);
    if let crate::data::LoaderSource::Images(set) = &train.source {
        model.adopt_input_normalization(set.transform.normalize.as_ref());
    }
    let loss = opts.loss.unwrap_or(Loss::default_for(model.task()));
    loss.check(model.task())?;
    if model.task() != Task::Classify && opts.label_smoothing > 0.0 {
        bail!("label_smoothing applies to single-label classification; this head is for {}", model.task().name());
    }
    if model.task() != Task::Classify && opts.class_weights.is_some() {
        bail!("class_weights apply to single-label classification; this head is for {}", model.task().name());
    }
    if let Some(es) = &opts.early_stopping {
        es.monitor.check(model.task())?;
    }
    if opts.eval_every.is_some() && val.is_none() {
        bail!("eval_every evaluates on the validation set: give fit a validation loader");
    }
    if opts.early_stopping.is_some() && val.is_none() {
        bail!("early stopping watches the validation set: give fit a validation loader");
    }
    if opts.lr <= 0.0 || !opts.lr.is_finite() {
        bail!("the learning rate must be positive, got {}", opts.lr);
    }
    if model.summary().trainable() == 0 {
        bail!("nothing to train: every parameter is frozen; unfreeze some, e.g. model.unfreeze(\"head\") or model.trainable_layers(2)");
    }
    let start_mask = model.trainable_mask();
    let groups = model.layer_groups();
    if opts.unfreezing.is_some() && !groups[0].params.iter().any(|p| start_mask.iter().any(|(n, t)| n == p && *t)) {
        bail!("gradual unfreezing starts with the head, but the head is frozen; unfreeze it (model.unfreeze(\"head\")) first");
    }
    let scales = opts.layer_rates.scales(model, opts.lr)?;
    let lr_groups = if opts.layer_rates.is_uniform() { Vec::new() } else { unfreeze::group_rates(&groups, &scales, opts.lr) };
    let params = param_specs(model, opts.weight_decay, &scales);
    let result = fit_inner(model, train, val, opts, observer, stop, params, lr_groups, &start_mask, &groups, loss);
    if opts.unfreezing.is_some() {
        // The freeze the user set is theirs: put it back, finished or not.
        model.set_trainable_mask(&start_mask);
    }
    result
}

#[allow(clippy::too_many_arguments)]
fn fit_inner(
    model: &mut dyn Learner,
    train: &DataLoader,
    val: Option<&DataLoader>,
    opts: &FitOptions,
    observer: &mut dyn TrainObserver,
    stop: &StopFlag,
    params: Vec<optim::ParamSpec>,
    lr_groups: Vec<(String, f64)>,
    start_mask: &[(String, bool)],
    groups: &[crate::model::LayerGroup],
    loss_kind: Loss,
) -> Result<TrainRun> {
    // Distributed: every rank trains a replica on its shard of each global
    // batch; rank 0 alone reports and writes.
    let dist = crate::distributed::current();
    let mut silent = Silent;
    let observer: &mut dyn TrainObserver = if crate::distributed::is_main_process() { observer } else { &mut silent };
    let first_unfrozen = opts.unfreezing.and_then(|u| apply_unfreezing(model, u, 1, start_mask, groups));
    let summary = model.summary();
    let device = model.device();
    let accumulate = opts.accumulate.max(1);
    let steps_per_epoch = train.len().div_ceil(accumulate);
    let mut total_steps = steps_per_epoch * opts.epochs;
    if let Some(m) = opts.max_steps {
        total_steps = total_steps.min(m);
    }
    let warmup = (opts.warmup * total_steps as f64).round() as usize;
    let mut optimizer = Optimizer::new(opts.optimizer, params, opts.betas.0, opts.betas.1, opts.eps);
    let mut run = TrainRun {
        trainable_params: summary.trainable(),
        total_params: summary.total(),
        device: match dist {
            Some(g) => format!("{device:?} x {} processes (Gloo)", g.world_size()),
            None => format!("{device:?}"),
        },
        ..Default::default()
    };
    observer.on_event(&TrainEvent::Start {
        epochs: opts.epochs,
        steps_per_epoch,
        total_steps,
        trainable_params: run.trainable_params,
        total_params: run.total_params,
        device: run.device.clone(),
        lr_groups,
    });
    if let Some(open) = first_unfrozen {
        observer.on_event(&TrainEvent::Unfrozen { epoch: 1, groups: open, trainable_params: run.trainable_params });
    }
    crate::runtime::memory::reset_peak_rss();
    let mut tracker = opts.early_stopping.clone().map(early_stopping::Tracker::new);
    let mut all_params: Vec<Tensor> = model.named_parameters().into_iter().map(|(_, t)| t).collect();
    let loss_weights = class_weight_tensor(opts, train, model.labels().len(), device)?;
    if let Some(v) = val.filter(|v| v.task() == Task::Classify) {
        let present = v.targets().label_counts(model.labels().len()).iter().filter(|&&n| n > 0).count();
        if present < 2 {
            observer.on_event(&TrainEvent::Warning(format!(
                "the validation set has {present} class of {}: its accuracy says little; split with more rows or stratify",
                model.labels().len()
            )));
        }
    }
    if let Some(note) = imbalance_note(train, model.labels()) {
        observer.on_event(&TrainEvent::Warning(note));
    }
    let mut plateau = (opts.schedule == Schedule::ReduceOnPlateau).then(schedule::Plateau::default);
    if plateau.is_some() && val.is_none() {
        bail!("reduce_on_plateau watches the validation loss: give fit a validation loader");
    }
    let started = Instant::now();
    let mut step = 0usize;
    let mut samples = 0usize;
    let mut eval_seconds = 0.0;
    let mut first_epoch = 1;
    if let Some(dir) = &opts.resume {
        let saved = checkpoint::load_latest(dir)?;
        checkpoint::restore_parameters(&model.named_parameters(), &saved.model, &saved.folder)?;
        optimizer.load_state(&saved.optimizer);
        step = saved.state.step;
        first_epoch = saved.state.epoch + 1;
        run.epochs = saved.state.epochs.clone();
        run.steps = saved.state.steps.clone();
        run.evaluations = saved.state.evaluations.clone();
        if let (Some(p), Some((scale, best, bad))) = (plateau.as_mut(), saved.state.plateau) {
            p.restore(scale, best, bad);
        }
        // Early stopping picks up where it was (the best weights it kept are in the best checkpoint).
        if let Some(t) = tracker.as_mut() {
            for e in &run.epochs {
                if let Some(v) = &e.val {
                    t.update(e.epoch, v, &[]);
                }
            }
            if let Some(best) = t.best_epoch() {
                if let Ok(b) = checkpoint::load_folder(&dir.join(format!("epoch-{best}"))) {
                    let names: Vec<String> = model.named_parameters().into_iter().map(|(n, _)| n).collect();
                    if let Some(weights) = names.iter().map(|n| b.model.get(n).map(|t| t.to_device(device))).collect::<Option<Vec<Tensor>>>() {
                        t.set_best_weights(weights);
                    }
                }
            }
        }
        observer.on_event(&TrainEvent::Resumed { epoch: saved.state.epoch, step });
    }
    if let Some(g) = dist {
        // As DDP does at construction: every replica starts from rank 0's
        // weights (a freshly initialized head differs between processes).
        let params: Vec<Tensor> = model.named_parameters().into_iter().map(|(_, t)| t).collect();
        let synced = g.broadcast(&params, 0)?;
        tch::no_grad(|| {
            for (p, s) in params.iter().zip(&synced) {
                p.shallow_clone().copy_(s);
            }
        });
    }
    let mut layer_tracker = opts.track_layers.then(|| layer_stats::LayerTracker::new(model));
    let mut overlap: Option<crate::distributed::OverlappedGradients> = None;
    'epochs: for epoch in first_epoch..=opts.epochs {
        if let Some(seed) = opts.seed {
            // Dropout depends only on the seed and the epoch, so a resumed run repeats an uninterrupted one.
            tch::manual_seed((seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64) % (i64::MAX as u64)) as i64);
        }
        if let Some(u) = opts.unfreezing.filter(|_| epoch > 1) {
            if let Some(open) = apply_unfreezing(model, u, epoch, start_mask, groups) {
                observer.on_event(&TrainEvent::Unfrozen { epoch, groups: open, trainable_params: model.summary().trainable() });
            }
        }
        let (mut loss_sum, mut batches) = (0.0, 0usize);
        let batch_rows = train.batch_indices(epoch);
        // This process's rows of each global batch (all of them on one process).
        let local_rows: Vec<Vec<usize>> = match dist {
            Some(g) => batch_rows.iter().map(|b| crate::distributed::shard(b, g.rank(), g.world_size())).collect(),
            None => batch_rows.clone(),
        };
        // Only the batches this run will reach are prepared.
        let reachable = total_steps.saturating_sub(step).saturating_mul(accumulate).min(batch_rows.len());
        let mut prepared = train.prefetch(local_rows[..reachable].iter().filter(|b| !b.is_empty()).cloned().collect(), Some(epoch), PREFETCH_AHEAD)?;
        for (i, group) in batch_rows.chunks(accumulate).enumerate() {
            // Ranks stop together, after a step they all took (see below).
            if dist.is_none() && stop.load(Ordering::Relaxed) {
                run.interrupted = true;
                break 'epochs;
            }
            if step >= total_steps {
                break;
            }
            let lr = opts.lr * opts.schedule.factor(step, total_steps, warmup) * plateau.as_ref().map_or(1.0, |p| p.scale);
            let group_rows: usize = group.iter().map(Vec::len).sum();
            let mut group_loss = 0.0;
            // Gradients come back as fresh tensors rather than accumulating into
            // each parameter's .grad (PyTorch's zero_grad(set_to_none=True)):
            // no zero-filling and no extra pass over every gradient per step.
            let inputs = optimizer.trainable();
            let mut grads: Vec<Tensor> = Vec::new();
            let locals = &local_rows[i * accumulate..i * accumulate + group.len()];
            if let Some(g) = dist {
                if !overlap.as_ref().is_some_and(|o| o.covers(&inputs)) {
                    drop(overlap.take()); // the old hooks go before new ones are added
                    overlap = Some(crate::distributed::OverlappedGradients::new(g, &inputs)?);
                }
            }
            if let Some(o) = overlap.as_mut() {
                o.begin_step();
            }
            let last_backward = locals.iter().rposition(|b| !b.is_empty());
            for (k, local) in locals.iter().enumerate() {
                if local.is_empty() {
                    // A short last batch can leave a rank without rows: it adds nothing.
                    continue;
                }
                if let (Some(o), true) = (overlap.as_mut(), Some(k) == last_backward) {
                    o.last_backward();
                }
                let batch = prepared.next_batch()?.ok_or_else(|| anyhow::anyhow!("the data loader ended early"))?.to_device(device);
                let logits = model.forward(&batch.inputs, true)?;
                let loss = loss_kind.compute(&logits, &batch.labels, loss_weights.as_ref(), opts.label_smoothing);
                // Each batch counts by its rows, so accumulated steps equal one big batch.
                let share = batch.size as f64 / group_rows as f64;
                let batch_grads = Tensor::run_backward(&[&loss * share], &inputs, false, false);
                if overlap.is_some() {
                    // The hooks have put these into the buckets already.
                } else if grads.is_empty() {
                    grads = batch_grads;
                } else {
                    tch::no_grad(|| {
                        for (sum, g) in grads.iter_mut().zip(batch_grads) {
                            match (sum.defined(), g.defined()) {
                                (true, true) => drop(sum.g_add_(&g)),
                                (false, true) => *sum = g,
                                _ => {}
                            }
                        }
                    });
                }
                group_loss += loss.double_value(&[]) * share;
            }
            samples += group_rows;
            let mut all_stop = false;
            if let (Some(g), Some(o)) = (dist, overlap.as_mut()) {
                // Each rank's gradient is its rows' share of the global mean,
                // so their sum is the gradient of the whole global batch.
                let (summed, reported) = o.finish()?;
                (grads, group_loss, all_stop) = agree_on_step(g, summed, &reported, group_loss, stop.load(Ordering::Relaxed))?;
            }
            if !group_loss.is_finite() {
                let kept = opts.checkpoint.as_ref().filter(|_| !run.epochs.is_empty()).map(|c| format!("; the last good checkpoint is in {}", c.dir.display())).unwrap_or_default();
                bail!("the training loss became {group_loss} at step {}; lower the learning rate (it is {}){kept}", step + 1, opts.lr);
            }
            if let Some(t) = layer_tracker.as_mut() {
                t.add_step(&optimizer.trainable_names(), &grads);
            }
            if let Some(max) = opts.max_grad_norm {
                optim::clip_norm(&grads, max);
            }
            optimizer.step_with(lr, grads);
            step += 1;
            loss_sum += group_loss;
            batches += 1;
            let record = StepRecord { step, loss: group_loss, lr };
            run.steps.push(record);
            observer.on_event(&TrainEvent::Step { epoch, step_in_epoch: i + 1, record });
            if all_stop {
                run.interrupted = true;
                break 'epochs;
            }
            // Between epoch ends only: the epoch's own evaluation covers its last step.
            let epoch_ends = i + 1 == batch_rows.len().div_ceil(accumulate) || step >= total_steps;
            if let (Some(n), Some(v), false) = (opts.eval_every, val, epoch_ends) {
                if step.is_multiple_of(n.max(1)) {
                    observer.on_event(&TrainEvent::Evaluating { epoch });
                    let eval_started = Instant::now();
                    let result = evaluate_with_stop(model, v, Some(stop))?;
                    eval_seconds += eval_started.elapsed().as_secs_f64();
                    let Some((result, _)) = result else {
                        run.interrupted = true;
                        break 'epochs;
                    };
                    let e = StepEval { step, epoch, result };
                    run.evaluations.push(e);
                    observer.on_event(&TrainEvent::Evaluated(e));
                }
            }
        }
        let val_result = match val {
            Some(v) => {
                observer.on_event(&TrainEvent::Evaluating { epoch });
                let eval_started = Instant::now();
                let result = evaluate_with_stop(model, v, Some(stop))?;
                eval_seconds += eval_started.elapsed().as_secs_f64();
                match result {
                    Some((r, _)) => Some(r),
                    None => {
                        run.interrupted = true;
                        break 'epochs;
                    }
                }
            }
            None => None,
        };
        let record = EpochRecord { epoch, train_loss: loss_sum / batches.max(1) as f64, val: val_result, elapsed: started.elapsed().as_secs_f64() };
        if let Some(t) = layer_tracker.as_mut() {
            run.layers.extend(t.epoch_end(epoch));
        }
        run.epochs.push(record.clone());
        observer.on_event(&TrainEvent::EpochEnd(record));
        if let (Some(p), Some(v)) = (plateau.as_mut(), val_result) {
            if p.update(v.loss) {
                observer.on_event(&TrainEvent::Warning(format!("validation loss has not improved for 2 epochs: learning rate x{}", p.scale)));
            }
        }
        let stop_early = match (tracker.as_mut(), val_result) {
            (Some(t), Some(v)) => t.update(epoch, &v, &all_params) && epoch < opts.epochs,
            _ => false,
        };
        if let Some(c) = &opts.checkpoint {
            let best_epoch = tracker.as_ref().and_then(|t| t.best_epoch()).or_else(|| {
                run.epochs.iter().filter_map(|e| e.val.map(|v| (e.epoch, v.loss))).min_by(|a, b| a.1.total_cmp(&b.1)).map(|(e, _)| e)
            });
            let state = checkpoint::CheckpointState {
                epoch,
                step,
                seed: opts.seed,
                plateau: plateau.as_ref().map(|p| p.save()),
                epochs: run.epochs.clone(),
                steps: run.steps.clone(),
                evaluations: run.evaluations.clone(),
                best_epoch,
                version: env!("CARGO_PKG_VERSION").to_string(),
            };
            // Replicas are identical: rank 0 writes for all.
            let path = crate::distributed::main_process_writes(
                || {
                    let params: Vec<(String, Tensor)> = model.named_parameters().into_iter().map(|(n, t)| (n, t.detach().to_device(Device::Cpu))).collect();
                    checkpoint::save(c, &params, &optimizer.state_tensors(), &state)
                },
                || c.dir.clone(),
            )
            .map_err(|e| anyhow::anyhow!("{e:#}; training stopped after epoch {epoch}, and the model keeps its weights in memory (save it elsewhere)"))?;
            observer.on_event(&TrainEvent::Checkpoint { epoch, path: path.display().to_string() });
        }
        if stop_early {
            run.stopped_early_at = Some(epoch);
            break;
        }
        if step >= total_steps {
            break;
        }
    }
    if let Some(t) = &tracker {
        run.best_epoch = t.best_epoch();
        // An interrupted run keeps what it learned; a finished one gets its best epoch back.
        if !run.interrupted && run.best_epoch != run.epochs.last().map(|e| e.epoch) {
            run.restored_best = t.restore(&mut all_params);
        }
        if let (Some(best_epoch), true) = (run.best_epoch, run.stopped_early_at.is_some() || run.restored_best) {
            observer.on_event(&TrainEvent::EarlyStopping { stopped_at: run.stopped_early_at, best_epoch, restored: run.restored_best });
        }
    }
    run.seconds = started.elapsed().as_secs_f64();
    run.train_seconds = run.seconds - eval_seconds;
    run.samples_per_sec = samples as f64 / run.train_seconds.max(1e-9);
    run.optimizer_state_bytes = optimizer.state_bytes();
    run.peak_rss_bytes = crate::runtime::memory::peak_rss_bytes();
    if run.interrupted {
        observer.on_event(&TrainEvent::Interrupted { steps: step });
    }
    observer.on_event(&TrainEvent::Done(run.clone()));
    Ok(run)
}

/// The ranks' summed loss of one step, whether any rank was asked to stop,
/// and the summed gradients with those no rank produced left undefined, as
/// on one process.
fn agree_on_step(group: &crate::distributed::ProcessGroup, summed: Vec<Tensor>, reported: &[bool], loss: f64, stop: bool) -> Result<(Vec<Tensor>, f64, bool)> {
    let mut scalars: Vec<f64> = vec![loss, f64::from(u8::from(stop))];
    scalars.extend(reported.iter().map(|&r| f64::from(u8::from(r))));
    let totals = Vec::<f64>::try_from(&group.all_reduce(&[Tensor::from_slice(&scalars)], crate::distributed::ReduceOp::Sum)?[0])?;
    let grads = summed.into_iter().zip(&totals[2..]).map(|(g, &n)| if n > 0.0 { g } else { Tensor::new() }).collect();
    Ok((grads, totals[0], totals[1] > 0.0))
}

/// Batches the loader thread prepares ahead of training.
const PREFETCH_AHEAD: usize = 2;

/// A warning when the training classes are badly imbalanced: the largest
/// has at least 5 times the rows of the smallest (or a class has none).
fn imbalance_note(data: &DataLoader, labels: &[String]) -> Option<String> {
    if data.task() != Task::Classify {
        return None;
    }
    let counts = data.targets().label_counts(labels.len());
    let (min, max) = (*counts.iter().min()?, *counts.iter().max()?);
    (max >= 5 * min.max(1) || min == 0).then(|| {
        let each: Vec<String> = labels.iter().zip(&counts).map(|(l, n)| format!("{l}: {n}")).collect();
        format!("the training classes are imbalanced ({}); consider class_weights: \"balanced\" and a stratified split", each.join(", "))
    })
}

/// A head made for a count of labels (`LABEL_0`, `LABEL_1`, ...) takes the
/// data's class names when there are as many, so that predictions and the
/// saved `id2label` use them.
fn adopt_label_names(model: &mut dyn Learner, data: &DataLoader) {
    if crate::task::are_placeholder_labels(model.labels()) && data.label_names().len() == model.labels().len() {
        model.set_labels(data.label_names().to_vec());
    }
}

fn check_labels(model: &dyn Learner, data: &DataLoader) -> Result<()> {
    let task = data.task();
    if task != model.task() {
        bail!(
            "the data is labelled for {} but the model's head is for {}; load the model with task: \"{}\"{}",
            task.name(),
            model.task().name(),
            task.name(),
            if matches!(task, Task::Classify | Task::Tokens) { String::new() } else { format!(" and labels: {}", data.label_names().len()) }
        );
    }
    if matches!(task, Task::MultiLabel | Task::Regression) && data.label_names().len() != model.labels().len() {
        let what = if task == Task::Regression { "outputs" } else { "labels" };
        bail!(
            "the data has {} {what} ({}) but the model's head has {}; load the model with labels: {}",
            data.label_names().len(),
            data.label_names().join(", "),
            model.labels().len(),
            data.label_names().len()
        );
    }
    if data.label_names().len() > model.labels().len() {
        bail!(
            "the data has {} classes ({}) but the model's head has {} ({}); load the model with labels: {}",
            data.label_names().len(),
            data.label_names().join(", "),
            model.labels().len(),
            model.labels().join(", "),
            data.label_names().len()
        );
    }
    Ok(())
}

/// What an evaluation counted, by task: the per-class and per-label
/// scores come from it.
#[derive(Debug, Clone, PartialEq)]
pub enum EvalDetail {
    /// Single-label classification: the confusion matrix.
    Classes(Confusion),
    /// Multi-label classification: counts per label.
    MultiLabel(MultiLabelCounts),
    /// Regression: predictions and targets.
    Regression(RegressionScores),
}

/// The loss and the task's metrics of `model` on every batch of `data`,
/// without gradients.
pub fn evaluate(model: &dyn Learner, data: &DataLoader) -> Result<EvalResult> {
    Ok(evaluate_detailed(model, data)?.0)
}

/// As `evaluate`, with what it counted (the confusion matrix, per-label
/// counts, or the predictions of a regression).
pub fn evaluate_detailed(model: &dyn Learner, data: &DataLoader) -> Result<(EvalResult, EvalDetail)> {
    check_labels(model, data)?;
    Ok(evaluate_with_stop(model, data, None)?.expect("no stop flag, so evaluation runs to the end"))
}

/// As `evaluate_detailed`, but returns `None` if `stop` is set between batches.
fn evaluate_with_stop(model: &dyn Learner, data: &DataLoader, stop: Option<&StopFlag>) -> Result<Option<(EvalResult, EvalDetail)>> {
    let device = model.device();
    let task = model.task();
    let loss_kind = Loss::default_for(task);
    let (mut loss_sum, mut rows, mut weight) = (0.0, 0usize, 0.0);
    let mut detail = match task {
        Task::Classify | Task::Tokens => EvalDetail::Classes(Confusion::new(model.labels().len())),
        Task::MultiLabel => EvalDetail::MultiLabel(MultiLabelCounts::new(model.labels().len())),
        Task::Regression => EvalDetail::Regression(RegressionScores::new(model.labels().len())),
    };
    let _guard = tch::no_grad_guard();
    let floats = |t: &Tensor| Vec::<f32>::try_from(t.to_kind(Kind::Float).flatten(0, -1).to_device(Device::Cpu)).unwrap_or_default();
    let dist = crate::distributed::current();
    let batches = match dist {
        // Each rank evaluates its shard; the counts are summed below. A
        // stop request waits for the end, so that the ranks finish together.
        Some(g) => data.batch_indices(0).iter().map(|b| crate::distributed::shard(b, g.rank(), g.world_size())).filter(|b| !b.is_empty()).collect(),
        None => data.batch_indices(0),
    };
    let stop = if dist.is_some() { None } else { stop };
    let mut prepared = data.prefetch(batches, None, PREFETCH_AHEAD)?;
    while let Some(batch) = prepared.next_batch()? {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return Ok(None);
        }
        let batch = batch.to_device(device);
        let outputs = model.forward(&batch.inputs, false)?;
        let loss = loss_kind.compute(&outputs, &batch.labels, None, 0.0).double_value(&[]);
        // The mean is over rows, or over labelled words for token data.
        let counted = if task == Task::Tokens { batch.labels.ne(-100).sum(Kind::Int64).int64_value(&[]) as f64 } else { batch.size as f64 };
        if counted > 0.0 {
            loss_sum += loss * counted;
            weight += counted;
        }
        match &mut detail {
            EvalDetail::Classes(confusion) => {
                // Token data: -100 marks padding and continuation tokens, which `add` skips.
                let predicted = Vec::<i64>::try_from(outputs.argmax(-1, false).flatten(0, -1).to_device(Device::Cpu)).unwrap_or_default();
                let truth = Vec::<i64>::try_from(batch.labels.flatten(0, -1).to_device(Device::Cpu)).unwrap_or_default();
                confusion.add(&truth, &predicted);
            }
            EvalDetail::MultiLabel(counts) => counts.add(&floats(&batch.labels), &floats(&outputs.ge(0.0))),
            EvalDetail::Regression(scores) => scores.add(&floats(&batch.labels), &floats(&outputs)),
        }
        rows += batch.size;
    }
    if let Some(g) = dist {
        (loss_sum, weight, rows) = sum_evaluation(g, loss_sum, weight, rows, &mut detail)?;
    }
    let mut result = EvalResult { loss: loss_sum / weight.max(1.0), task, accuracy: None, f1: None, mse: None, mae: None, r2: None, rows };
    match &detail {
        EvalDetail::Classes(c) => (result.accuracy, result.f1) = (Some(c.accuracy()), Some(c.macro_scores().2)),
        EvalDetail::MultiLabel(c) => (result.accuracy, result.f1) = (Some(c.exact_match()), Some(c.macro_scores().2)),
        EvalDetail::Regression(r) => (result.mse, result.mae, result.r2) = (Some(r.mse()), Some(r.mae()), Some(r.r2())),
    }
    Ok(Some((result, detail)))
}

/// Sums one evaluation's loss, weights, rows and counts over the ranks
/// (a regression's predictions are gathered).
fn sum_evaluation(group: &crate::distributed::ProcessGroup, loss_sum: f64, weight: f64, rows: usize, detail: &mut EvalDetail) -> Result<(f64, f64, usize)> {
    use crate::distributed::ReduceOp;
    let totals = Vec::<f64>::try_from(&group.all_reduce(&[Tensor::from_slice(&[loss_sum, weight, rows as f64])], ReduceOp::Sum)?[0])?;
    let sum_counts = |counts: Vec<i64>| -> Result<Vec<i64>> { Ok(Vec::<i64>::try_from(&group.all_reduce(&[Tensor::from_slice(&counts)], ReduceOp::Sum)?[0])?) };
    match detail {
        EvalDetail::Classes(c) => {
            let n = c.counts.len();
            let summed = sum_counts(c.counts.iter().flatten().copied().collect())?;
            c.counts = summed.chunks(n.max(1)).map(<[i64]>::to_vec).collect();
        }
        EvalDetail::MultiLabel(c) => {
            let mut flat: Vec<i64> = c.counts.iter().flat_map(|&(tp, fp, fn_)| [tp, fp, fn_]).collect();
            flat.extend([c.exact, c.rows]);
            let summed = sum_counts(flat)?;
            let labels = c.counts.len();
            c.counts = summed[..3 * labels].chunks(3).map(|x| (x[0], x[1], x[2])).collect();
            (c.exact, c.rows) = (summed[3 * labels], summed[3 * labels + 1]);
        }
        EvalDetail::Regression(r) => {
            let (predicted, truth) = r.values();
            *r = RegressionScores::from_values(r.outputs(), group.all_gather_f64(predicted)?, group.all_gather_f64(truth)?);
        }
    }
    Ok((totals[0], totals[1], totals[2].round() as usize))
}

/// The class weights of the training loss as a tensor, if any.
fn class_weight_tensor(opts: &FitOptions, data: &DataLoader, classes: usize, device: Device) -> Result<Option<Tensor>> {
    let weights = match &opts.class_weights {
        None => return Ok(None),
        Some(ClassWeights::Given(w)) => {
            if w.len() != classes {
                bail!("class_weights has {} weights but the head has {classes} classes; give one per class, in label order", w.len());
            }
            if w.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
                bail!("class weights must be 0 or more");
            }
            w.clone()
        }
        Some(ClassWeights::Balanced) => {
            let counts = data.targets().label_counts(classes);
            let n = data.rows() as f64;
            counts.iter().map(|&c| if c == 0 { 0.0 } else { n / (classes as f64 * c as f64) }).collect()
        }
    };
    Ok(Some(Tensor::from_slice(&weights).to_kind(Kind::Float).to_device(device)))
}

/// Texts tokenized with the model's tokenizer, unlabelled.
fn encode_texts(model: &Model, texts: &[String], pairs: Option<&[String]>, max_len: usize) -> Result<TokenizedDataset> {
    let unlabelled = crate::data::TextDataset {
        name: "predict".into(),
        texts: texts.to_vec(),
        pairs: pairs.map(<[String]>::to_vec),
        targets: crate::data::Targets::Classes(vec![0; texts.len()]),
        label_names: model.labels.clone(),
        notes: Vec::new(),
    };
    TokenizedDataset::new(&unlabelled, &model.tokenizer, max_len)
}

/// Sentence embeddings: the mean of the last hidden states over real
/// tokens, L2-normalized (as sentence-transformers computes them for
/// all-MiniLM-L6-v2). `[texts, hidden]` on the CPU.
pub fn embed(model: &Model, texts: &[String], max_len: usize) -> Result<Tensor> {
    let data = encode_texts(model, texts, None, max_len)?;
    let _guard = tch::no_grad_guard();
    let rows: Vec<usize> = (0..texts.len()).collect();
    let mut parts = Vec::new();
    for chunk in rows.chunks(64) {
        let batch = data.collate(chunk, model.device());
        let crate::data::Inputs::Text { input_ids, token_type_ids, attention_mask } = &batch.inputs else { unreachable!("texts collate to text inputs") };
        let hidden = model.hidden_states(input_ids, token_type_ids, attention_mask, false);
        let pooled = crate::model::mean_pool(&hidden, attention_mask);
        let norm = pooled.norm_scalaropt_dim(2.0, [-1i64].as_slice(), true).clamp_min(1e-12);
        parts.push((pooled / norm).to_device(Device::Cpu));
    }
    if parts.is_empty() {
        return Ok(Tensor::zeros([0, model.config.hidden_size], (Kind::Float, Device::Cpu)));
    }
    Ok(Tensor::cat(&parts, 0))
}

/// What the model predicts for one text.
#[derive(Debug, Clone, PartialEq)]
pub enum Prediction {
    /// Single-label: the top class and its probability.
    Class {
        /// The class's name.
        label: String,
        /// Its softmax probability.
        score: f64,
    },
    /// Multi-label: every label's sigmoid probability, in label order; a
    /// label is predicted when it is at least 0.5.
    Labels(Vec<(String, f64)>),
    /// Regression: each output's value, in output order.
    Values(Vec<(String, f64)>),
    /// Token classification: each word with its tag and the tag's
    /// probability (words past `max_len` tokens are left out).
    Tags(Vec<(String, String, f64)>),
}

/// Predictions from a head's raw outputs `[rows, labels]`, by its task.
fn predictions(task: Task, labels: &[String], outputs: &Tensor) -> Result<Vec<Prediction>> {
    let outputs = outputs.to_kind(Kind::Double).to_device(Device::Cpu);
    let named = |row: Vec<f64>| labels.iter().cloned().zip(row).collect::<Vec<_>>();
    Ok(match task {
        Task::Classify => {
            let (p, idx) = outputs.softmax(-1, Kind::Double).max_dim(-1, false);
            let p: Vec<f64> = Vec::<f64>::try_from(p)?;
            let idx: Vec<i64> = Vec::<i64>::try_from(idx)?;
            idx.into_iter().zip(p).map(|(i, score)| Prediction::Class { label: labels[i as usize].clone(), score }).collect()
        }
        Task::MultiLabel => Vec::<Vec<f64>>::try_from(outputs.sigmoid())?.into_iter().map(|r| Prediction::Labels(named(r))).collect(),
        Task::Regression => Vec::<Vec<f64>>::try_from(outputs)?.into_iter().map(|r| Prediction::Values(named(r))).collect(),
        Task::Tokens => bail!("tagging words needs the texts: use predict(model, texts)"),
    })
}

/// Each word's tag and its probability, from the first token of the word.
fn predict_tags(model: &Model, texts: &[String], max_len: usize) -> Result<Vec<Prediction>> {
    let words: Vec<Vec<String>> = texts.iter().map(|t| t.split_whitespace().map(str::to_string).collect()).collect();
    let unlabelled = crate::data::TextDataset {
        name: "predict".into(),
        texts: words.iter().map(|w| w.join(" ")).collect(),
        pairs: None,
        targets: crate::data::Targets::Tokens(words.iter().map(|w| vec![0; w.len()]).collect()),
        label_names: model.labels.clone(),
        notes: Vec::new(),
    };
    let data = TokenizedDataset::new(&unlabelled, &model.tokenizer, max_len)?;
    let aligned = data.token_labels.clone().expect("token data is aligned");
    let _guard = tch::no_grad_guard();
    let mut out = Vec::with_capacity(texts.len());
    let rows: Vec<usize> = (0..texts.len()).collect();
    for chunk in rows.chunks(64) {
        let batch = data.collate(chunk, model.device());
        let probs = Learner::forward(model, &batch.inputs, false)?.softmax(-1, Kind::Double).to_device(Device::Cpu);
        let (p, idx) = probs.max_dim(-1, false);
        for (r, &i) in chunk.iter().enumerate() {
            let (p, idx): (Vec<f64>, Vec<i64>) = (Vec::try_from(p.get(r as i64))?, Vec::try_from(idx.get(r as i64))?);
            // Words cut off by max_len get no tag.
            let firsts = aligned[i].iter().enumerate().filter(|(_, &l)| l != -100).map(|(t, _)| t);
            out.push(Prediction::Tags(words[i].iter().zip(firsts).map(|(w, t)| (w.clone(), model.labels[idx[t] as usize].clone(), p[t])).collect()));
        }
    }
    Ok(out)
}

/// The prediction for every row of a loader, in row order (its shuffle and
/// augmentation are not used).
pub fn predict_loader(model: &dyn Learner, data: &DataLoader) -> Result<Vec<Prediction>> {
    let _guard = tch::no_grad_guard();
    let rows: Vec<usize> = (0..data.rows()).collect();
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(data.options.batch_size.max(1)) {
        let batch = data.collate(chunk, model.device(), None);
        out.extend(predictions(model.task(), model.labels(), &model.forward(&batch.inputs, false)?)?);
    }
    Ok(out)
}

/// The prediction for each text, by the head's task.
pub fn predict(model: &Model, texts: &[String], max_len: usize) -> Result<Vec<Prediction>> {
    if model.task == Task::Tokens && !texts.is_empty() {
        return predict_tags(model, texts, max_len);
    }
    predict_texts(model, texts, None, max_len)
}

/// The prediction for each sentence pair (`texts[i]`, `pairs[i]`).
pub fn predict_pairs(model: &Model, texts: &[String], pairs: &[String], max_len: usize) -> Result<Vec<Prediction>> {
    if model.task == Task::Tokens {
        bail!("a token classifier tags the words of single texts, not pairs");
    }
    predict_texts(model, texts, Some(pairs), max_len)
}

fn predict_texts(model: &Model, texts: &[String], pairs: Option<&[String]>, max_len: usize) -> Result<Vec<Prediction>> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let data = encode_texts(model, texts, pairs, max_len)?;
    let loader = DataLoader::new(std::sync::Arc::new(data), crate::data::LoaderOptions { batch_size: 64, shuffle: false, seed: 0, drop_last: false, bucket: false })?;
    predict_loader(model, &loader)
}
