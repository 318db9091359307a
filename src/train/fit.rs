//! The training loop. `fit` checks the request and builds a `Trainer` from
//! its parts: the optimizer, the learning-rate plan, the loss, and the
//! optional early stopping, checkpoints, gradual unfreezing, layer tracking
//! and data-parallel gradient sync. The trainer then runs epoch by epoch,
//! each a loop of optimizer steps, reporting through `TrainEvent`s.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{bail, Result};
use tch::{Device, Tensor};

use super::checkpoint::{self, CheckpointOptions, CheckpointState};
use super::early_stopping::Tracker;
use super::evaluate::{check_labels, evaluate_with_stop, PREFETCH_AHEAD};
use super::events::{Both, Silent, StopFlag, TrainEvent, TrainObserver};
use super::tensorboard::TensorBoardWriter;
use super::history::{EpochRecord, EvalResult, Sample, StepEval, StepRecord, TrainRun};
use super::layer_stats::LayerTracker;
use super::loss::Loss;
use super::loss_scale::LossScaler;
use super::optim::{self, Optimizer, ParamSpec};
use super::options::FitOptions;
use super::schedule::{Plateau, Schedule};
use super::sync::GradientSync;
use super::unfreeze::{self, GradualUnfreezing};
use crate::data::{DataLoader, LoaderSource, Prefetch};
use crate::model::Learner;
use crate::task::Task;

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
    adopt_data(model, train)?;
    check_options(model, val.is_some(), opts)?;
    crate::model::trained_weights_in_fp32(model);
    let start_mask = model.trainable_mask();
    // Distributed: every rank trains a replica on its shard of each global
    // batch; rank 0 alone reports and writes.
    let mut silent = Silent;
    let observer: &mut dyn TrainObserver = if crate::distributed::is_main_process() { observer } else { &mut silent };
    let mut board = match &opts.tensorboard {
        Some(dir) if crate::distributed::is_main_process() => {
            observer.on_event(&TrainEvent::TensorBoard { dir: dir.display().to_string() });
            Some(TensorBoardWriter::create(dir, opts.hparams(train.options.batch_size))?)
        }
        _ => None,
    };
    // SAFETY: every graph fit builds is consumed within its training step,
    // while `model` is borrowed here; checkpointing is off again below.
    unsafe { model.set_checkpointing(opts.checkpointing)? };
    let result = match board.as_mut() {
        Some(board) => Trainer::new(model, train, val, opts, &mut Both(observer, board), stop).and_then(Trainer::run),
        None => Trainer::new(model, train, val, opts, observer, stop).and_then(Trainer::run),
    };
    if let Some(failed) = board.as_ref().and_then(|b| b.error()) {
        observer.on_event(&TrainEvent::Warning(format!("the TensorBoard log is incomplete: {failed}")));
    }
    if opts.unfreezing.is_some() {
        // The freeze the user set is theirs: put it back, finished or not.
        model.set_trainable_mask(&start_mask);
    }
    // Later passes (evaluate, lr_find, another fit) run plainly unless asked.
    // SAFETY: turning it off is always safe.
    unsafe { model.set_checkpointing(false)? };
    result
}

/// Refuses options that do not fit the model's task or the data given.
fn check_options(model: &dyn Learner, has_val: bool, opts: &FitOptions) -> Result<()> {
    let task = model.task();
    opts.loss.unwrap_or(Loss::default_for(task)).check(task)?;
    if task != Task::Classify && opts.label_smoothing > 0.0 {
        bail!("label_smoothing applies to single-label classification; this head is for {}", task.name());
    }
    if task != Task::Classify && opts.class_weights.is_some() {
        bail!("class_weights apply to single-label classification; this head is for {}", task.name());
    }
    if let Some(es) = &opts.early_stopping {
        es.monitor.check(task)?;
    }
    if opts.eval_every.is_some() && !has_val {
        bail!("eval_every evaluates on the validation set: give fit a validation loader");
    }
    if opts.early_stopping.is_some() && !has_val {
        bail!("early stopping watches the validation set: give fit a validation loader");
    }
    if opts.schedule == Schedule::ReduceOnPlateau && !has_val {
        bail!("reduce_on_plateau watches the validation loss: give fit a validation loader");
    }
    if opts.lr <= 0.0 || !opts.lr.is_finite() {
        bail!("the learning rate must be positive, got {}", opts.lr);
    }
    if opts.checkpointing && crate::distributed::current().is_some() {
        // The recomputation's inner backward pass would run the data-parallel
        // gradient hooks a second time for each block's weights.
        bail!("checkpointing does not yet combine with data-parallel training (--nproc): train on one process with checkpointing, or across processes without it");
    }
    if model.summary().trainable() == 0 {
        bail!("nothing to train: every parameter is frozen; unfreeze some, e.g. model.unfreeze(\"head\") or model.trainable_layers(2)");
    }
    Ok(())
}

/// Takes from the training data what the model keeps for prediction: the
/// class names of a placeholder head, and how image inputs are normalized.
fn adopt_data(model: &mut dyn Learner, train: &DataLoader) -> Result<()> {
    // A head made for a count of labels (`LABEL_0`, ...) takes the data's
    // class names when there are as many, so that predictions and the saved
    // `id2label` use them; another count is a mistake, not spare outputs.
    let names = train.label_names();
    if crate::task::are_placeholder_labels(model.labels()) && !names.is_empty() {
        if names.len() != model.labels().len() && matches!(model.task(), Task::Classify | Task::Tokens) {
            let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
            bail!(
                "the model's head was made for {} labels, but the data has {} classes ({}); load the model with labels: {} (or labels: [{}])",
                model.labels().len(),
                names.len(),
                names.join(", "),
                names.len(),
                quoted.join(", ")
            );
        }
        if names.len() == model.labels().len() {
            model.set_labels(names.to_vec());
        }
    }
    if let LoaderSource::Images(set) = &train.source {
        model.adopt_input_normalization(set.transform.normalize.as_ref());
    }
    Ok(())
}

/// How the loop goes on after an epoch.
enum Flow {
    /// To the next epoch.
    Continue,
    /// The run is complete (its steps are done, or early stopping ended it).
    Finished,
    /// An interrupt stopped it; the model keeps what it learned.
    Interrupted,
}

/// The learning rate of each step: the schedule over the planned steps with
/// its warmup, times reduce-on-plateau's factor.
struct RatePlan {
    base: f64,
    schedule: Schedule,
    total_steps: usize,
    warmup: usize,
    plateau: Option<Plateau>,
}

impl RatePlan {
    fn lr(&self, step: usize) -> f64 {
        self.base * self.schedule.factor(step, self.total_steps, self.warmup) * self.plateau.as_ref().map_or(1.0, |p| p.scale)
    }
}

/// Steps in a row with a non-finite fp16 loss that are skipped before `fit`
/// gives up: backing off the scale cannot fix a forward pass that overflows.
const MAX_NONFINITE_FP16_STEPS: usize = 10;

/// One `fit` in progress: its parts and the run so far.
struct Trainer<'a> {
    model: &'a mut dyn Learner,
    train: &'a DataLoader,
    val: Option<&'a DataLoader>,
    opts: &'a FitOptions,
    observer: &'a mut dyn TrainObserver,
    stop: &'a StopFlag,
    loss: Loss,
    loss_weights: Option<Tensor>,
    optimizer: Optimizer,
    plan: RatePlan,
    accumulate: usize,
    steps_per_epoch: usize,
    device: Device,
    unfreezing: Option<GradualUnfreezing>,
    /// The groups opened at epoch 1, reported once the run starts.
    first_unfrozen: Option<Vec<String>>,
    /// The learning rate of each layer group, when they differ.
    lr_groups: Vec<(String, f64)>,
    early_stopping: Option<Tracker>,
    layer_tracker: Option<LayerTracker>,
    sync: Option<GradientSync>,
    /// fp16's loss scaling; `None` in other precisions.
    scaler: Option<LossScaler>,
    /// Whether the optimizer is updating the weights (a failure there leaves some updated).
    updating: bool,
    /// Steps in a row whose fp16 loss was not finite (each skipped, as GradScaler would).
    nonfinite_in_a_row: usize,
    /// Every parameter: early stopping copies and restores the best ones.
    all_params: Vec<Tensor>,
    run: TrainRun,
    step: usize,
    samples: usize,
    eval_seconds: f64,
    started: Instant,
}

impl<'a> Trainer<'a> {
    fn new(
        model: &'a mut dyn Learner,
        train: &'a DataLoader,
        val: Option<&'a DataLoader>,
        opts: &'a FitOptions,
        observer: &'a mut dyn TrainObserver,
        stop: &'a StopFlag,
    ) -> Result<Self> {
        let start_mask = model.trainable_mask();
        let groups = model.layer_groups();
        if opts.unfreezing.is_some() && !groups[0].params.iter().any(|p| start_mask.iter().any(|(n, t)| n == p && *t)) {
            bail!("gradual unfreezing starts with the head, but the head is frozen; unfreeze it (model.unfreeze(\"head\")) first");
        }
        let scales = opts.layer_rates.scales(model, opts.lr)?;
        let lr_groups = if opts.layer_rates.is_uniform() { Vec::new() } else { unfreeze::group_rates(&groups, &scales, opts.lr) };
        let params = param_specs(model, opts.weight_decay, &scales);
        let unfreezing = opts.unfreezing.map(|schedule| GradualUnfreezing { schedule, start_mask, groups });
        let first_unfrozen = unfreezing.as_ref().and_then(|u| u.apply(model, 1));
        let summary = model.summary();
        let device = model.device();
        let accumulate = opts.accumulate.max(1);
        let steps_per_epoch = train.len().div_ceil(accumulate);
        let total_steps = (steps_per_epoch * opts.epochs).min(opts.max_steps.unwrap_or(usize::MAX));
        let warmup = (opts.warmup * total_steps as f64).round() as usize;
        let plateau = (opts.schedule == Schedule::ReduceOnPlateau).then(Plateau::default);
        let dist = crate::distributed::current();
        let run = TrainRun {
            trainable_params: summary.trainable(),
            total_params: summary.total(),
            device: match dist {
                Some(g) => format!("{} x {} processes (Gloo)", crate::runtime::device_name(device), g.world_size()),
                None => crate::runtime::device_name(device),
            },
            ..Default::default()
        };
        Ok(Self {
            loss: opts.loss.unwrap_or(Loss::default_for(model.task())),
            loss_weights: opts.class_weights.as_ref().map(|w| w.tensor(train, model.labels().len(), device)).transpose()?,
            optimizer: Optimizer::new(opts.optimizer, params, opts.betas.0, opts.betas.1, opts.eps),
            plan: RatePlan { base: opts.lr, schedule: opts.schedule, total_steps, warmup, plateau },
            accumulate,
            steps_per_epoch,
            device,
            unfreezing,
            first_unfrozen,
            lr_groups,
            early_stopping: opts.early_stopping.clone().map(Tracker::new),
            layer_tracker: None,
            sync: dist.map(GradientSync::new),
            scaler: opts.precision.scales_loss().then(|| LossScaler::new(opts.loss_scaler, device)),
            updating: false,
            nonfinite_in_a_row: 0,
            all_params: model.state().into_iter().map(|(_, t)| t).collect(),
            run,
            step: 0,
            samples: 0,
            eval_seconds: 0.0,
            started: Instant::now(),
            model,
            train,
            val,
            opts,
            observer,
            stop,
        })
    }

    /// Runs every epoch (from the checkpoint's, when resuming) and returns the run.
    fn run(mut self) -> Result<TrainRun> {
        self.announce();
        crate::runtime::memory::reset_peak_rss();
        crate::runtime::memory::reset_device_peak(self.device);
        self.started = Instant::now();
        let first_epoch = match &self.opts.resume {
            Some(dir) => self.resume(dir)? + 1,
            None => 1,
        };
        if let Some(s) = &self.sync {
            s.broadcast_weights(&*self.model)?;
        }
        self.layer_tracker = self.opts.track_layers.then(|| LayerTracker::new(&*self.model));
        self.sample(first_epoch - 1)?;
        for epoch in first_epoch..=self.opts.epochs {
            match self.run_epoch(epoch)? {
                Flow::Continue => {}
                Flow::Finished => break,
                Flow::Interrupted => {
                    self.run.interrupted = true;
                    break;
                }
            }
        }
        Ok(self.finish())
    }

    /// The start of the run, its first unfreezing, and what the data warns of.
    fn announce(&mut self) {
        let start = TrainEvent::Start {
            epochs: self.opts.epochs,
            steps_per_epoch: self.steps_per_epoch,
            total_steps: self.plan.total_steps,
            trainable_params: self.run.trainable_params,
            total_params: self.run.total_params,
            device: match self.opts.precision {
                crate::runtime::precision::Precision::Fp32 => self.run.device.clone(),
                p => format!("{} in {} (autocast)", self.run.device, p.name()),
            },
            lr_groups: std::mem::take(&mut self.lr_groups),
            validation: self.val.is_some(),
        };
        self.observer.on_event(&start);
        if let Some(open) = self.first_unfrozen.take() {
            self.observer.on_event(&TrainEvent::Unfrozen { epoch: 1, groups: open, trainable_params: self.run.trainable_params });
        }
        let labels = self.model.labels();
        if let Some(v) = self.val.filter(|v| v.task() == Task::Classify) {
            let present = v.targets().label_counts(labels.len()).iter().filter(|&&n| n > 0).count();
            if present < 2 {
                let note = format!("the validation set has {present} class of {}: its accuracy says little; split with more rows or stratify", labels.len());
                self.observer.on_event(&TrainEvent::Warning(note));
            }
        }
        if let Some(note) = imbalance_note(self.train, labels) {
            self.observer.on_event(&TrainEvent::Warning(note));
        }
        if self.opts.precision != crate::runtime::precision::Precision::Fp32 && self.device == tch::Device::Cpu {
            if let Some(note) = crate::runtime::precision::cpu_precision_note(self.opts.precision) {
                self.observer.on_event(&TrainEvent::Warning(note));
            }
        }
        if self.opts.precision == crate::runtime::precision::Precision::Fp32 && self.model.summary().storage.bf16 > 0 {
            // Outside autocast each bf16 matrix is cast to fp32 for its
            // product, and the backward pass keeps that copy.
            let note = "the model stores weights in bf16 and fit runs in fp32: the backward pass keeps an fp32 copy of each, which takes more memory than fp32 weights would; train it with precision: \"bf16\"".to_string();
            self.observer.on_event(&TrainEvent::Warning(note));
        }
    }

    /// Restores the latest checkpoint in `dir`: weights, optimizer state, the
    /// run so far, the plateau and early stopping. Returns the epochs done.
    fn resume(&mut self, dir: &Path) -> Result<usize> {
        let saved = checkpoint::load_latest(dir)?;
        checkpoint::restore_parameters(&self.model.state(), &saved.model, &saved.folder)?;
        self.optimizer.load_state(&saved.optimizer);
        self.step = saved.state.step;
        self.run.epochs = saved.state.epochs.clone();
        self.run.steps = saved.state.steps.clone();
        self.run.evaluations = saved.state.evaluations.clone();
        if let (Some(p), Some((scale, best, bad))) = (self.plan.plateau.as_mut(), saved.state.plateau) {
            p.restore(scale, best, bad);
        }
        if let (Some(s), Some(state)) = (self.scaler.as_mut(), saved.state.loss_scale) {
            s.restore(state);
        }
        if let Some(t) = self.early_stopping.as_mut() {
            resume_early_stopping(t, &self.run.epochs, dir, &*self.model, self.device);
        }
        self.observer.on_event(&TrainEvent::Resumed { epoch: saved.state.epoch, step: self.step });
        Ok(saved.state.epoch)
    }

    /// One epoch: its optimizer steps (with `eval_every`'s evaluations), then
    /// its validation, early stopping and checkpoint.
    fn run_epoch(&mut self, epoch: usize) -> Result<Flow> {
        self.begin_epoch(epoch);
        let batch_rows = self.train.batch_indices(epoch);
        // This process's rows of each global batch (all of them on one process).
        let local_rows: Vec<Vec<usize>> = match &self.sync {
            Some(s) => batch_rows.iter().map(|b| crate::distributed::shard(b, s.group.rank(), s.group.world_size())).collect(),
            None => batch_rows.clone(),
        };
        let accumulate = self.accumulate;
        // Only the batches this run will reach are prepared.
        let reachable = self.plan.total_steps.saturating_sub(self.step).saturating_mul(accumulate).min(batch_rows.len());
        let mut prepared = self.train.prefetch(local_rows[..reachable].iter().filter(|b| !b.is_empty()).cloned().collect(), Some(epoch), PREFETCH_AHEAD, self.device)?;
        let steps_in_epoch = batch_rows.len().div_ceil(accumulate);
        let (mut loss_sum, mut batches) = (0.0, 0usize);
        for (i, group) in batch_rows.chunks(accumulate).enumerate() {
            // Ranks stop together, after a step they all took (see `finish_step`).
            if self.sync.is_none() && self.stop.load(Ordering::Relaxed) {
                return Ok(Flow::Interrupted);
            }
            if self.step >= self.plan.total_steps {
                break;
            }
            let locals = &local_rows[i * accumulate..i * accumulate + group.len()];
            // With several processes, the others would wait for this one's gradients: no catching there.
            let (record, all_stop) = if self.sync.is_some() {
                self.train_step(group, locals, &mut prepared)?
            } else {
                match crate::runtime::memory::catch_out_of_memory(|| self.train_step(group, locals, &mut prepared)) {
                    Ok(step) => step?,
                    Err(oom) => return Err(self.out_of_memory(&oom, locals)),
                }
            };
            loss_sum += record.loss;
            batches += 1;
            let samples = group.iter().map(Vec::len).sum();
            self.observer.on_event(&TrainEvent::Step { epoch, step_in_epoch: i + 1, samples, record });
            if all_stop {
                return Ok(Flow::Interrupted);
            }
            // Between epoch ends only: the epoch's own evaluation covers its last step.
            let epoch_ends = i + 1 == steps_in_epoch || self.step >= self.plan.total_steps;
            if let (Some(n), false) = (self.opts.eval_every, epoch_ends) {
                if self.step.is_multiple_of(n.max(1)) && !self.evaluate_mid_epoch(epoch)? {
                    return Ok(Flow::Interrupted);
                }
            }
        }
        self.end_epoch(epoch, loss_sum / batches.max(1) as f64)
    }

    /// What to do when a step's batch did not fit in memory: the batch that
    /// failed, and what to lower or turn on.
    fn out_of_memory(&self, oom: &crate::runtime::memory::OutOfMemory, locals: &[Vec<usize>]) -> anyhow::Error {
        let rows = locals.iter().map(Vec::len).max().unwrap_or(0);
        let batch = self.train.describe_rows(locals.iter().max_by_key(|b| b.len()).map_or(&[][..], Vec::as_slice));
        let asked = oom.requested().map(|r| format!(" (it ran out allocating {r} more)")).unwrap_or_default();
        let kept = match (self.updating, self.step) {
            (true, _) => "It ran out inside the optimizer's update, so some weights were updated and others not: reload the model (or resume from the last checkpoint)".to_string(),
            (false, 0) => "Nothing was trained".to_string(),
            (false, 1) => "The model keeps the weights of the step before".to_string(),
            (false, n) => format!("The model keeps the weights of the {n} steps before"),
        };
        if rows <= 1 {
            return anyhow::anyhow!("out of memory at training step {}: even {batch} did not fit{asked}; shorten max_len, freeze more of the model (model.trainable_layers(n)) or use LoRA. {kept}. libtorch said: {}", self.step + 1, oom.message);
        }
        let smaller = rows / 2;
        let fewer_tokens = if matches!(self.train.source, LoaderSource::Text(_) | LoaderSource::Streamed(_)) { ", shorten max_len in tokenize" } else { "" };
        let bf16 = if self.opts.precision == crate::runtime::precision::Precision::Fp32 { ", or train in bf16 on a GPU (precision: \"bf16\")" } else { "" };
        anyhow::anyhow!(
            "out of memory at training step {}: {batch} did not fit{asked}. Lower the loader's batch and keep the effective batch with accumulation (loader(#{{ batch: {smaller} }}) and fit's accumulate: {}){fewer_tokens}{bf16}; find_batch_size(model, loader) finds a batch that fits. {kept}. libtorch said: {}",
            self.step + 1,
            self.accumulate * rows.div_ceil(smaller),
            oom.message
        )
    }

    /// Reseeds dropout and opens the epoch's layer groups.
    fn begin_epoch(&mut self, epoch: usize) {
        if let Some(seed) = self.opts.seed {
            // Dropout depends only on the seed and the epoch, so a resumed run repeats an uninterrupted one.
            tch::manual_seed((seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64) % (i64::MAX as u64)) as i64);
        }
        if let Some(u) = self.unfreezing.as_ref().filter(|_| epoch > 1) {
            if let Some(open) = u.apply(self.model, epoch) {
                let trainable_params = self.model.summary().trainable();
                self.observer.on_event(&TrainEvent::Unfrozen { epoch, groups: open, trainable_params });
            }
        }
    }

    /// One optimizer step over a global batch of micro-batches (`group`, and
    /// this rank's rows of each, `locals`). Returns the step's record and
    /// whether any rank was asked to stop.
    fn train_step(&mut self, group: &[Vec<usize>], locals: &[Vec<usize>], prepared: &mut Prefetch) -> Result<(StepRecord, bool)> {
        // As Hugging Face's Trainer, a step skipped for fp16 overflow does not advance the schedule.
        let lr = self.plan.lr(self.step - self.scaler.as_ref().map_or(0, LossScaler::skipped));
        let group_rows: usize = group.iter().map(Vec::len).sum();
        // What each batch's mean loss is weighted by: its rows, or for a
        // language model its label tokens, so that the accumulated loss is
        // the mean over every label token of the step (not a mean of means).
        let train = self.train;
        let weigh = |rows: &[usize]| -> f64 { train.loss_weight(rows) };
        let group_weight: f64 = group.iter().map(|b| weigh(b)).sum();
        let mut group_loss = 0.0;
        // Gradients come back as fresh tensors rather than accumulating into
        // each parameter's .grad (PyTorch's zero_grad(set_to_none=True)):
        // no zero-filling and no extra pass over every gradient per step.
        let inputs = self.optimizer.trainable();
        let mut grads: Vec<Tensor> = Vec::new();
        if let Some(s) = self.sync.as_mut() {
            s.begin_step(&inputs)?;
        }
        let last_backward = locals.iter().rposition(|b| !b.is_empty());
        for (k, local) in locals.iter().enumerate() {
            if local.is_empty() {
                // A short last batch can leave a rank without rows: it adds nothing.
                continue;
            }
            if let (Some(s), true) = (self.sync.as_mut(), Some(k) == last_backward) {
                s.last_backward();
            }
            let batch = prepared.next_batch()?.ok_or_else(|| anyhow::anyhow!("the data loader ended early"))?.to_device(self.device);
            // Each batch counts by its weight, so accumulated steps equal one big batch.
            let share = if group_weight > 0.0 { weigh(local) / group_weight } else { 0.0 };
            let loss = if share > 0.0 {
                super::loss::batch_loss(&*self.model, &batch, self.loss, self.loss_weights.as_ref(), self.opts.label_smoothing, self.opts.precision)?
            } else {
                // No label token (answers cut off): a zero that keeps the graph, not the mean of nothing.
                self.model.forward(&batch.inputs, true)?.sum(tch::Kind::Float) * 0.0
            };
            let weighted = &loss * share;
            let weighted = match &self.scaler {
                Some(s) => s.scale_loss(&weighted),
                None => weighted,
            };
            let batch_grads = Tensor::run_backward(&[weighted], &inputs, false, false);
            if self.sync.is_none() {
                // With sync, the hooks have put these into the buckets already.
                add_gradients(&mut grads, batch_grads);
            }
            group_loss += loss.double_value(&[]) * share;
        }
        self.samples += group_rows;
        let mut all_stop = false;
        if let Some(s) = self.sync.as_mut() {
            (grads, group_loss, all_stop) = s.finish_step(group_loss, self.stop.load(Ordering::Relaxed))?;
        }
        // In fp16 a non-finite loss is an overflow like any other: skipped with
        // the scale backed off, unless it goes on (the forward pass itself overflows).
        let skippable = self.scaler.is_some() && self.nonfinite_in_a_row < MAX_NONFINITE_FP16_STEPS;
        self.nonfinite_in_a_row = if group_loss.is_finite() { 0 } else { self.nonfinite_in_a_row + 1 };
        if !group_loss.is_finite() && !skippable {
            let kept = self.opts.checkpoint.as_ref().filter(|_| !self.run.epochs.is_empty()).map(|c| format!("; the last good checkpoint is in {}", c.dir.display())).unwrap_or_default();
            let fp16 = if self.scaler.is_some() { format!(" ({MAX_NONFINITE_FP16_STEPS} steps in a row were skipped for it); in fp16 the forward pass itself may overflow (its range ends at 65504): bf16 has fp32's range") } else { String::new() };
            bail!("the training loss became {group_loss} at step {}; lower the learning rate (it is {}){fp16}{kept}", self.step + 1, self.opts.lr);
        }
        if let Some(s) = self.scaler.as_mut() {
            // Unscaled before clipping, as GradScaler.unscale_ is; an overflow skips the step.
            let overflowed = s.unscale(&mut grads)? || !group_loss.is_finite();
            s.update(overflowed);
            if overflowed {
                self.step += 1;
                let record = StepRecord { step: self.step, loss: group_loss, lr, grad_norm: self.opts.max_grad_norm.map(|_| f64::INFINITY) };
                self.run.steps.push(record);
                return Ok((record, all_stop));
            }
        }
        if let Some(t) = self.layer_tracker.as_mut() {
            t.add_step(&self.optimizer.trainable_names(), &grads);
        }
        let grad_norm = self.opts.max_grad_norm.map(|max| optim::clip_norm(&grads, max));
        self.updating = true;
        self.optimizer.step_with(lr, grads);
        self.updating = false;
        self.step += 1;
        let record = StepRecord { step: self.step, loss: group_loss, lr, grad_norm };
        self.run.steps.push(record);
        Ok((record, all_stop))
    }

    /// Evaluates on `val`, timed apart from training; `None` when an
    /// interrupt stopped it.
    fn timed_evaluation(&mut self, val: &DataLoader, epoch: usize) -> Result<Option<EvalResult>> {
        self.observer.on_event(&TrainEvent::Evaluating { epoch });
        let started = Instant::now();
        let observer = &mut self.observer;
        let result = evaluate_with_stop(&*self.model, val, Some(self.stop), self.opts.precision, &mut |batch, batches| observer.on_event(&TrainEvent::EvalProgress { batch, batches }))?;
        self.eval_seconds += started.elapsed().as_secs_f64();
        Ok(result.map(|(r, _)| r))
    }

    /// An `eval_every` evaluation; false when an interrupt stopped it.
    fn evaluate_mid_epoch(&mut self, epoch: usize) -> Result<bool> {
        let Some(val) = self.val else { return Ok(true) };
        let Some(result) = self.timed_evaluation(val, epoch)? else { return Ok(false) };
        let e = StepEval { step: self.step, epoch, result };
        self.run.evaluations.push(e);
        self.observer.on_event(&TrainEvent::Evaluated(e));
        self.sample(epoch)?;
        Ok(true)
    }

    /// Asks the sample hook what the model does now and reports it (on the
    /// main process; the time counts as evaluation, not training).
    fn sample(&mut self, epoch: usize) -> Result<()> {
        let Some(hook) = self.opts.samples.clone() else { return Ok(()) };
        if !crate::distributed::is_main_process() || self.stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let started = Instant::now();
        let pairs = (hook.0)(&*self.model)?;
        self.eval_seconds += started.elapsed().as_secs_f64();
        let samples: Vec<Sample> = pairs.into_iter().map(|(prompt, text)| Sample { step: self.step, epoch, prompt, text }).collect();
        self.run.samples.extend(samples.iter().cloned());
        self.observer.on_event(&TrainEvent::Samples(samples));
        Ok(())
    }

    /// The epoch's validation and record, the plateau, early stopping and
    /// the checkpoint.
    fn end_epoch(&mut self, epoch: usize, train_loss: f64) -> Result<Flow> {
        let val_result = match self.val {
            Some(v) => match self.timed_evaluation(v, epoch)? {
                Some(r) => Some(r),
                None => return Ok(Flow::Interrupted),
            },
            None => None,
        };
        let record = EpochRecord { epoch, train_loss, val: val_result, elapsed: self.started.elapsed().as_secs_f64() };
        if let Some(t) = self.layer_tracker.as_mut() {
            self.run.layers.extend(t.epoch_end(epoch));
        }
        self.run.epochs.push(record.clone());
        self.observer.on_event(&TrainEvent::EpochEnd(record));
        self.sample(epoch)?;
        if let (Some(p), Some(v)) = (self.plan.plateau.as_mut(), val_result) {
            if p.update(v.loss) {
                self.observer.on_event(&TrainEvent::Warning(format!("validation loss has not improved for 2 epochs: learning rate x{}", p.scale)));
            }
        }
        let stop_early = match (self.early_stopping.as_mut(), val_result) {
            (Some(t), Some(v)) => t.update(epoch, &v, &self.all_params) && epoch < self.opts.epochs,
            _ => false,
        };
        if let Some(c) = &self.opts.checkpoint {
            self.write_checkpoint(epoch, c)?;
        }
        if stop_early {
            self.run.stopped_early_at = Some(epoch);
            return Ok(Flow::Finished);
        }
        Ok(if self.step >= self.plan.total_steps { Flow::Finished } else { Flow::Continue })
    }

    /// Writes the epoch's checkpoint (rank 0 writes for all: replicas are identical).
    fn write_checkpoint(&mut self, epoch: usize, c: &CheckpointOptions) -> Result<()> {
        let best_epoch = self.early_stopping.as_ref().and_then(|t| t.best_epoch()).or_else(|| {
            self.run.epochs.iter().filter_map(|e| e.val.map(|v| (e.epoch, v.loss))).min_by(|a, b| a.1.total_cmp(&b.1)).map(|(e, _)| e)
        });
        let state = CheckpointState {
            epoch,
            step: self.step,
            seed: self.opts.seed,
            plateau: self.plan.plateau.as_ref().map(|p| p.save()),
            epochs: self.run.epochs.clone(),
            steps: self.run.steps.clone(),
            evaluations: self.run.evaluations.clone(),
            best_epoch,
            loss_scale: self.scaler.as_ref().map(LossScaler::save),
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let path = crate::distributed::main_process_writes(
            || {
                let params: Vec<(String, Tensor)> = self.model.state().into_iter().map(|(n, t)| (n, t.detach().to_device(Device::Cpu))).collect();
                checkpoint::save(c, &params, &self.optimizer.state_tensors(), &state)
            },
            || c.dir.clone(),
        )
        .map_err(|e| anyhow::anyhow!("{e:#}; training stopped after epoch {epoch}, and the model keeps its weights in memory (save it elsewhere)"))?;
        self.observer.on_event(&TrainEvent::Checkpoint { epoch, path: path.display().to_string() });
        Ok(())
    }

    /// Early stopping's outcome, the run's totals, and the last events.
    fn finish(mut self) -> TrainRun {
        if let Some(t) = &self.early_stopping {
            self.run.best_epoch = t.best_epoch();
            // An interrupted run keeps what it learned; a finished one gets its best epoch back.
            if !self.run.interrupted && self.run.best_epoch != self.run.epochs.last().map(|e| e.epoch) {
                self.run.restored_best = t.restore(&mut self.all_params);
            }
            if let (Some(best_epoch), true) = (self.run.best_epoch, self.run.stopped_early_at.is_some() || self.run.restored_best) {
                self.observer.on_event(&TrainEvent::EarlyStopping { stopped_at: self.run.stopped_early_at, best_epoch, restored: self.run.restored_best });
            }
        }
        let run = &mut self.run;
        run.seconds = self.started.elapsed().as_secs_f64();
        run.train_seconds = run.seconds - self.eval_seconds;
        run.samples_per_sec = self.samples as f64 / run.train_seconds.max(1e-9);
        run.optimizer_state_bytes = self.optimizer.state_bytes();
        run.peak_rss_bytes = crate::runtime::memory::peak_rss_bytes();
        run.peak_device_bytes = crate::runtime::memory::device_peak_bytes(self.device);
        if let Some(s) = &self.scaler {
            run.loss_scale = Some(s.scale());
            run.skipped_steps = s.skipped();
        }
        if run.interrupted {
            self.observer.on_event(&TrainEvent::Interrupted { steps: self.step });
        }
        self.observer.on_event(&TrainEvent::Done(run.clone()));
        self.run
    }
}

/// Early stopping picks up where it was: the epochs so far replayed, and the
/// best weights it kept read back from the best epoch's checkpoint.
fn resume_early_stopping(tracker: &mut Tracker, epochs: &[EpochRecord], dir: &Path, model: &dyn Learner, device: Device) {
    for e in epochs {
        if let Some(v) = &e.val {
            tracker.update(e.epoch, v, &[]);
        }
    }
    let Some(best) = tracker.best_epoch() else { return };
    if let Ok(b) = checkpoint::load_folder(&dir.join(format!("epoch-{best}"))) {
        let names: Vec<String> = model.state().into_iter().map(|(n, _)| n).collect();
        if let Some(weights) = names.iter().map(|n| b.model.get(n).map(|t| t.to_device(device))).collect::<Option<Vec<Tensor>>>() {
            tracker.set_best_weights(weights);
        }
    }
}

/// Adds a micro-batch's gradients to the step's sum (the first becomes it).
pub(super) fn add_gradients(sum: &mut Vec<Tensor>, grads: Vec<Tensor>) {
    if sum.is_empty() {
        *sum = grads;
        return;
    }
    tch::no_grad(|| {
        for (s, g) in sum.iter_mut().zip(grads) {
            match (s.defined(), g.defined()) {
                (true, true) => drop(s.g_add_(&g)),
                (false, true) => *s = g,
                _ => {}
            }
        }
    });
}

/// Every parameter the run may update (frozen ones too: unfreezing can open
/// them later, and the optimizer skips them while frozen), with its decay
/// and rate multiplier.
pub(super) fn param_specs(model: &dyn Learner, weight_decay: f64, scales: &HashMap<String, f64>) -> Vec<ParamSpec> {
    model
        .named_parameters()
        .into_iter()
        .map(|(name, t)| {
            // The usual convention: no decay on biases and norm weights (LayerNorm,
            // RMSNorm, BatchNorm): the one-dimensional parameters.
            let no_decay = t.dim() <= 1;
            let lr_scale = scales.get(&name).copied().unwrap_or(1.0);
            ParamSpec { name, tensor: t, weight_decay: if no_decay { 0.0 } else { weight_decay }, lr_scale }
        })
        .collect()
}

/// The imbalance warning fires when the largest training class has at
/// least this many times the rows of the smallest (a 67/33 split of two
/// classes), or a class has none.
pub const IMBALANCE_RATIO: usize = 2;

/// A warning when the training classes are imbalanced (`IMBALANCE_RATIO`),
/// with each class's share and what helps.
fn imbalance_note(data: &DataLoader, labels: &[String]) -> Option<String> {
    if data.task() != Task::Classify {
        return None;
    }
    let counts = data.targets().label_counts(labels.len());
    let (min, max) = (*counts.iter().min()?, *counts.iter().max()?);
    let total: usize = counts.iter().sum();
    (max >= IMBALANCE_RATIO * min.max(1) || min == 0).then(|| {
        let each: Vec<String> = labels.iter().zip(&counts).map(|(l, &n)| format!("{l}: {n}, {}", crate::numbers::percent(n as i64, total as i64))).collect();
        format!(
            "the training classes are imbalanced ({}): accuracy flatters a model that favours the largest; consider class_weights: \"balanced\", early_stopping: #{{ monitor: \"val_f1\" }} and a stratified split",
            each.join("; ")
        )
    })
}
