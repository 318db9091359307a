//! Early stopping: watch a validation metric, stop when it has not improved
//! for `patience` epochs, and optionally put back the best epoch's weights.

use anyhow::{bail, Result};
use tch::Tensor;

use super::EvalResult;
use crate::task::Task;

/// The validation metric to watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Monitor {
    /// Lower is better.
    ValLoss,
    /// Higher is better.
    ValAccuracy,
    /// Macro F1; higher is better.
    ValF1,
    /// Mean absolute error (regression); lower is better.
    ValMae,
    /// R² (regression); higher is better.
    ValR2,
}

impl Monitor {
    /// Valid names.
    pub const NAMES: &'static [&'static str] = &["val_loss", "val_accuracy", "val_f1", "val_mae", "val_r2"];

    /// Parses a metric name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "val_loss" => Ok(Self::ValLoss),
            "val_accuracy" => Ok(Self::ValAccuracy),
            "val_f1" => Ok(Self::ValF1),
            "val_mae" => Ok(Self::ValMae),
            "val_r2" => Ok(Self::ValR2),
            _ => bail!("unknown metric '{s}'; valid: {}", Self::NAMES.join(", ")),
        }
    }

    /// The metric's name in an evaluation (`loss`, `accuracy`, ...).
    fn metric(self) -> &'static str {
        Self::NAMES[self as usize].trim_start_matches("val_")
    }

    /// Refuses a metric that a head's task does not report.
    pub fn check(self, task: Task) -> Result<()> {
        if self != Self::ValLoss && !task.metric_names().contains(&self.metric()) {
            let valid: Vec<String> = std::iter::once("val_loss".to_string()).chain(task.metric_names().iter().filter(|&&m| m != "mse").map(|m| format!("val_{m}"))).collect();
            bail!("early stopping cannot watch {} on a {} head; valid: {}", Self::NAMES[self as usize], task.name(), valid.join(", "));
        }
        Ok(())
    }

    /// The metric's value, signed so that higher is always better.
    fn score(self, r: &EvalResult) -> f64 {
        let value = r.metric(self.metric()).unwrap_or(f64::NAN);
        match self {
            Self::ValLoss | Self::ValMae => -value,
            Self::ValAccuracy | Self::ValF1 | Self::ValR2 => value,
        }
    }
}

/// Settings of early stopping.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlyStopping {
    /// What to watch.
    pub monitor: Monitor,
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// The smallest change that counts as an improvement.
    pub min_delta: f64,
    /// Put back the best epoch's weights when training ends.
    pub restore_best: bool,
}

/// Tracks the best epoch during one run.
pub(super) struct Tracker {
    settings: EarlyStopping,
    best: Option<(usize, f64)>,
    since_best: usize,
    best_weights: Option<Vec<Tensor>>,
}

impl Tracker {
    pub(super) fn new(settings: EarlyStopping) -> Self {
        Self { settings, best: None, since_best: 0, best_weights: None }
    }

    /// Records an epoch's result; returns whether training should stop.
    pub(super) fn update(&mut self, epoch: usize, val: &EvalResult, params: &[Tensor]) -> bool {
        let score = self.settings.monitor.score(val);
        let improved = self.best.is_none_or(|(_, best)| score > best + self.settings.min_delta);
        if improved {
            self.best = Some((epoch, score));
            self.since_best = 0;
            if self.settings.restore_best {
                // A copy, not a view: training goes on changing the originals.
                self.best_weights = Some(tch::no_grad(|| params.iter().map(Tensor::copy).collect()));
            }
        } else {
            self.since_best += 1;
        }
        self.since_best >= self.settings.patience
    }

    /// Sets the best epoch's weights (read back from its checkpoint on resume).
    pub(super) fn set_best_weights(&mut self, weights: Vec<Tensor>) {
        if self.settings.restore_best {
            self.best_weights = Some(weights);
        }
    }

    /// The best epoch so far.
    pub(super) fn best_epoch(&self) -> Option<usize> {
        self.best.map(|(e, _)| e)
    }

    /// Copies the best epoch's weights back into `params`, if kept.
    pub(super) fn restore(&self, params: &mut [Tensor]) -> bool {
        let Some(best) = self.best_weights.as_ref().filter(|b| b.len() == params.len()) else { return false };
        tch::no_grad(|| {
            for (p, b) in params.iter_mut().zip(best) {
                p.copy_(b);
            }
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(loss: f64) -> EvalResult {
        EvalResult { loss, task: Task::Classify, accuracy: Some(1.0 - loss), f1: Some(1.0 - loss), mse: None, mae: None, r2: None, rows: 10 }
    }

    #[test]
    fn stops_after_patience_epochs_without_improvement_and_restores_the_best() {
        let settings = EarlyStopping { monitor: Monitor::ValLoss, patience: 2, min_delta: 0.0, restore_best: true };
        let mut t = Tracker::new(settings);
        let mut params = vec![Tensor::from_slice(&[1.0f32, 2.0])];
        assert!(!t.update(1, &result(0.5), &params));
        let _ = params[0].g_add_scalar_(1.0);
        assert!(!t.update(2, &result(0.4), &params)); // best: weights [2, 3]
        let _ = params[0].g_add_scalar_(1.0);
        assert!(!t.update(3, &result(0.45), &params));
        let _ = params[0].g_add_scalar_(1.0);
        assert!(t.update(4, &result(0.41), &params), "two epochs without improvement stop the run");
        assert_eq!(t.best_epoch(), Some(2));
        assert!(t.restore(&mut params));
        assert_eq!(Vec::<f32>::try_from(&params[0]).unwrap(), vec![2.0, 3.0]);
    }

    #[test]
    fn min_delta_and_accuracy_direction() {
        let settings = EarlyStopping { monitor: Monitor::ValAccuracy, patience: 1, min_delta: 0.05, restore_best: false };
        let mut t = Tracker::new(settings);
        let p: Vec<Tensor> = vec![];
        assert!(!t.update(1, &result(0.5), &p)); // accuracy 0.5
        assert!(t.update(2, &result(0.48), &p), "a gain of 0.02 is under min_delta");
        assert_eq!(t.best_epoch(), Some(1));
        assert!(!t.restore(&mut []), "nothing kept without restore_best");
    }
}
