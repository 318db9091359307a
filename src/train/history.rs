//! What a run produced: evaluation results, per-step and per-epoch records, the run's totals,
//! and its history as JSON Lines (one summary line, then one line per step
//! and per epoch), so that runs can be kept, compared and charted later
//! (`run_files` reads and writes every format by name).

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::task::Task;
use super::layer_stats::LayerStats;

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
            // exp(mean next-token cross-entropy) for language models.
            "perplexity" => (self.task == Task::NextToken).then(|| self.loss.exp()),
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
            Task::Classify => &["loss", "accuracy", "f1"],
            Task::MultiLabel | Task::Tokens => &["loss", "accuracy", "f1"],
            Task::Regression => &["loss", "mae", "r2"],
            Task::NextToken => &["loss", "perplexity"],
        };
        shown.iter().filter_map(|&n| self.metric(n).map(|v| format!("{prefix}{n} {v:.4}"))).collect::<Vec<_>>().join(", ")
    }
}

/// What one epoch produced.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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

/// One optimizer step: its loss, learning rate and gradient norm.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepRecord {
    /// 1-based step number.
    pub step: usize,
    /// Training loss of the batch.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// The gradients' global L2 norm before clipping, as Hugging Face's
    /// Trainer logs it; `None` when the run does not clip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f64>,
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
    /// What the model answered to the sample prompts at the start and
    /// after each evaluation (`FitOptions::samples`).
    #[serde(default)]
    pub samples: Vec<Sample>,
    /// fp16's loss scale at the end (`None` in other precisions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<f64>,
    /// Steps skipped because fp16 gradients overflowed (their record has an
    /// infinite gradient norm when the run clips).
    #[serde(default)]
    pub skipped_steps: usize,
    /// Peak memory allocated on the CUDA device during the run
    /// (`torch.cuda.max_memory_allocated`); `None` on the CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_device_bytes: Option<u64>,
}

/// One answer to a fixed prompt during training.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// Optimizer steps taken when it was generated (0: before training).
    pub step: usize,
    /// The epoch it was generated in (0: before training).
    pub epoch: usize,
    /// The prompt as the user gave it (a chat's last user message).
    pub prompt: String,
    /// What the model generated.
    pub text: String,
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

impl TrainRun {
    /// Writes the run as JSON Lines (through a temporary file and a rename).
    pub fn save_jsonl(&self, path: &Path) -> Result<()> {
        crate::distributed::main_process_writes(|| self.write_jsonl(path), || ())
    }

    fn write_jsonl(&self, path: &Path) -> Result<()> {
        let mut summary = serde_json::to_value(self)?;
        let obj = summary.as_object_mut().expect("a run serializes to an object");
        obj.remove("steps");
        obj.remove("epochs");
        obj.insert("kind".into(), "run".into());
        let mut text = serde_json::to_string(&summary)? + "\n";
        for s in &self.steps {
            let mut line = json!({ "kind": "step", "step": s.step, "loss": s.loss, "lr": s.lr });
            if let Some(norm) = s.grad_norm {
                line["grad_norm"] = norm.into();
            }
            text += &(line.to_string() + "\n");
        }
        for e in &self.epochs {
            let mut v = serde_json::to_value(e)?;
            v.as_object_mut().expect("an epoch serializes to an object").insert("kind".into(), "epoch".into());
            text += &(v.to_string() + "\n");
        }
        crate::files::write_file(path, text.as_bytes())
    }

    /// Reads what `save_jsonl` wrote.
    pub fn load_jsonl(path: &Path) -> Result<TrainRun> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the run {}", path.display()))?;
        let mut summary: Option<Value> = None;
        let (mut steps, mut epochs) = (Vec::new(), Vec::new());
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let bad = |e: serde_json::Error| anyhow!("{}:{}: not a run record ({e})", path.display(), i + 1);
            let v: Value = serde_json::from_str(line).map_err(bad)?;
            match v["kind"].as_str() {
                Some("run") => summary = Some(v),
                Some("step") => steps.push(serde_json::from_value::<StepRecord>(v).map_err(bad)?),
                Some("epoch") => epochs.push(serde_json::from_value::<EpochRecord>(v).map_err(bad)?),
                other => bail!("{}:{}: unknown record kind {other:?}; a run file has run, step and epoch lines", path.display(), i + 1),
            }
        }
        let mut summary = summary.ok_or_else(|| anyhow!("{} has no run line; was it written by run.save?", path.display()))?;
        let obj = summary.as_object_mut().expect("checked above");
        obj.remove("kind");
        obj.insert("steps".into(), json!([]));
        obj.insert("epochs".into(), json!([]));
        let mut run: TrainRun = serde_json::from_value(summary).with_context(|| format!("{}: the run line is incomplete", path.display()))?;
        run.steps = steps;
        run.epochs = epochs;
        Ok(run)
    }
}
