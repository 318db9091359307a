//! What the loop reports while it runs (`TrainEvent`), who listens
//! (`TrainObserver`: the terminal and notebook renderers in `render/`, or a
//! test), and the flag that stops it (`StopFlag`).

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::history::{EpochRecord, Sample, StepEval, StepRecord, TrainRun};

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
        /// Whether the run has a validation set to evaluate on.
        validation: bool,
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
        /// Rows the step trained on (over its accumulated micro-batches).
        samples: usize,
        /// The step's record.
        record: StepRecord,
    },
    /// Validation started (it can take a while).
    Evaluating {
        /// 1-based epoch.
        epoch: usize,
    },
    /// A validation batch was scored.
    EvalProgress {
        /// Batches scored so far.
        batch: usize,
        /// Batches in all.
        batches: usize,
    },
    /// After each epoch's validation.
    EpochEnd(EpochRecord),
    /// A validation in the middle of an epoch (`eval_every`).
    Evaluated(StepEval),
    /// What the model answers to the sample prompts now (`FitOptions::samples`).
    Samples(Vec<Sample>),
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
    /// The run is written as TensorBoard event files.
    TensorBoard {
        /// The run's folder of event files.
        dir: String,
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
    /// The lines this event adds to a run's written record (what a terminal
    /// prints and a notebook keeps as text output), given the planned epochs.
    /// Progress (steps, evaluation batches) and samples are not lines.
    pub fn record_lines(&self, epochs: usize) -> Vec<String> {
        match self {
            Self::Start { epochs, steps_per_epoch, total_steps, trainable_params, total_params, device, lr_groups, .. } => {
                let mut lines = vec![format!(
                    "training {} of {} parameters ({}) on {device}: {epochs} epochs x {steps_per_epoch} steps ({total_steps} steps)",
                    crate::numbers::group_digits(*trainable_params),
                    crate::numbers::group_digits(*total_params),
                    crate::numbers::percent(*trainable_params, *total_params)
                )];
                lines.extend(Self::lr_groups_summary(lr_groups));
                lines
            }
            Self::Unfrozen { epoch, groups, trainable_params } => vec![Self::unfrozen_summary(*epoch, groups, *trainable_params)],
            Self::EpochEnd(e) => {
                let val = e.val.map(|v| format!(", {}", v.summary("val_"))).unwrap_or_default();
                vec![format!("epoch {}/{epochs}: train_loss {:.4}{val} ({:.0}s)", e.epoch, e.train_loss, e.elapsed)]
            }
            Self::EarlyStopping { stopped_at, best_epoch, restored } => vec![Self::early_stopping_summary(*stopped_at, *best_epoch, *restored)],
            Self::Interrupted { steps } => vec![format!("interrupted after {steps} steps; the model keeps the weights learned so far")],
            Self::Done(run) if !run.interrupted => vec![format!("done in {:.0}s ({:.1} samples/s)", run.seconds, run.samples_per_sec)],
            other => other.note().into_iter().collect(),
        }
    }

    /// A line for the events that are only reported (warnings, checkpoints,
    /// resuming), for renderers.
    pub fn note(&self) -> Option<String> {
        match self {
            Self::Warning(text) => Some(format!("warning: {text}")),
            Self::Checkpoint { epoch, path } => Some(format!("epoch {epoch}: checkpoint saved to {path}")),
            Self::Resumed { epoch, step } => Some(format!("resumed after epoch {epoch} (step {step})")),
            Self::TensorBoard { dir } => {
                let parent = Path::new(dir).parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
                Some(format!("TensorBoard logs in {dir} (to view: tensorboard --logdir {})", parent.display()))
            }
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
        format!("epoch {epoch}: training {what}, {} parameters", crate::numbers::group_digits(trainable_params))
    }

    /// The samples as lines (for renderers): `step N: <prompt> -> <text>`,
    /// each text on one line and cut at `width` characters.
    pub fn sample_lines(samples: &[Sample], width: usize) -> Vec<String> {
        let one_line = |t: &str, n: usize| {
            let flat: String = t.split_whitespace().collect::<Vec<_>>().join(" ");
            if flat.chars().count() > n { format!("{}...", flat.chars().take(n).collect::<String>()) } else { flat }
        };
        samples.iter().map(|s| format!("step {}: {} -> {}", s.step, one_line(&s.prompt, width / 3), one_line(&s.text, width))).collect()
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

/// Two observers, each told every event.
pub struct Both<'a>(pub &'a mut dyn TrainObserver, pub &'a mut dyn TrainObserver);

impl TrainObserver for Both<'_> {
    fn on_event(&mut self, event: &TrainEvent) {
        self.0.on_event(event);
        self.1.on_event(event);
    }
}

/// An observer that ignores everything.
pub struct Silent;

impl TrainObserver for Silent {
    fn on_event(&mut self, _: &TrainEvent) {}
}

/// Checked between batches; set it from another thread (Ctrl-C, a kernel
/// interrupt) to stop training with the weights learned so far.
pub type StopFlag = Arc<AtomicBool>;
