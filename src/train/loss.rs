//! Training losses, one per task by default, as PyTorch defines them.

use crate::runtime::precision::Precision;
use anyhow::{bail, Result};
use tch::{Reduction, Tensor};

use crate::data::Batch;
use crate::model::Learner;
use crate::task::Task;

/// The loss `fit` minimizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Softmax cross-entropy (`nn.CrossEntropyLoss`), for one class per row.
    CrossEntropy,
    /// Sigmoid binary cross-entropy per label (`nn.BCEWithLogitsLoss`).
    Bce,
    /// Mean squared error (`nn.MSELoss`).
    Mse,
    /// Mean absolute error (`nn.L1Loss`).
    Mae,
    /// Huber loss with delta 1 (`nn.HuberLoss`): squared near the target,
    /// linear far from it.
    Huber,
}

impl Loss {
    /// Valid names, in `Loss` order.
    pub const NAMES: &'static [&'static str] = &["cross_entropy", "bce", "mse", "mae", "huber"];

    /// Parses a loss name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "cross_entropy" => Ok(Self::CrossEntropy),
            "bce" => Ok(Self::Bce),
            "mse" => Ok(Self::Mse),
            "mae" => Ok(Self::Mae),
            "huber" => Ok(Self::Huber),
            _ => bail!("unknown loss '{s}'; valid: {}", Self::NAMES.join(", ")),
        }
    }

    /// The name `parse` accepts.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The loss a task trains with unless told otherwise; validation loss
    /// always uses it, so that runs compare.
    pub fn default_for(task: Task) -> Self {
        match task {
            Task::Classify | Task::Tokens | Task::NextToken => Self::CrossEntropy,
            Task::MultiLabel => Self::Bce,
            Task::Regression => Self::Mse,
        }
    }

    /// The losses that make sense for a task.
    pub fn valid_for(task: Task) -> &'static [Loss] {
        match task {
            Task::Classify | Task::Tokens | Task::NextToken => &[Self::CrossEntropy],
            Task::MultiLabel => &[Self::Bce],
            Task::Regression => &[Self::Mse, Self::Mae, Self::Huber],
        }
    }

    /// Refuses a loss that does not fit the head's task.
    pub fn check(self, task: Task) -> Result<()> {
        let valid = Self::valid_for(task);
        if !valid.contains(&self) {
            let names: Vec<&str> = valid.iter().map(|l| l.name()).collect();
            bail!("loss '{}' does not fit a {} head; valid: {}", self.name(), task.name(), names.join(", "));
        }
        Ok(())
    }

    /// The mean loss of `outputs` against `targets` (class ids for
    /// cross-entropy, floats of the outputs' shape otherwise).
    /// `class_weights` and `label_smoothing` shape the cross-entropy only.
    pub fn compute(self, outputs: &Tensor, targets: &Tensor, class_weights: Option<&Tensor>, label_smoothing: f64) -> Tensor {
        match self {
            // Per-token outputs `[rows, tokens, classes]` against `[rows, tokens]`; -100 is ignored.
            Self::CrossEntropy if outputs.dim() == 3 => {
                let classes = outputs.size()[2];
                outputs.reshape([-1, classes]).cross_entropy_loss::<&Tensor>(&targets.reshape([-1]), class_weights, Reduction::Mean, -100, label_smoothing)
            }
            Self::CrossEntropy => outputs.cross_entropy_loss::<&Tensor>(targets, class_weights, Reduction::Mean, -100, label_smoothing),
            Self::Bce => outputs.binary_cross_entropy_with_logits::<&Tensor>(targets, None, None, Reduction::Mean),
            Self::Mse => outputs.mse_loss(targets, Reduction::Mean),
            Self::Mae => outputs.l1_loss(targets, Reduction::Mean),
            Self::Huber => outputs.huber_loss(targets, Reduction::Mean, 1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Loss;
    use crate::task::Task;
    use tch::Tensor;

    #[test]
    fn each_loss_follows_its_definition() {
        let out = Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.0]).view([2, 2]);
        let target = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0]).view([2, 2]);
        let value = |l: Loss| l.compute(&out, &target, None, 0.0).double_value(&[]);
        let (o, t) = ([0.5f64, -1.0, 2.0, 0.0], [1.0f64, 0.0, 0.0, 1.0]);
        let mean = |f: &dyn Fn(f64, f64) -> f64| o.iter().zip(&t).map(|(&o, &t)| f(o, t)).sum::<f64>() / 4.0;
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        let bce = mean(&|o, t| -(t * sigmoid(o).ln() + (1.0 - t) * (1.0 - sigmoid(o)).ln()));
        let huber = mean(&|o, t| if (o - t).abs() < 1.0 { 0.5 * (o - t).powi(2) } else { (o - t).abs() - 0.5 });
        assert!((value(Loss::Bce) - bce).abs() < 1e-6);
        assert!((value(Loss::Mse) - mean(&|o, t| (o - t).powi(2))).abs() < 1e-6);
        assert!((value(Loss::Mae) - mean(&|o, t| (o - t).abs())).abs() < 1e-6);
        assert!((value(Loss::Huber) - huber).abs() < 1e-6);
    }

    #[test]
    fn a_loss_that_does_not_fit_the_task_lists_those_that_do() {
        assert!(Loss::Mse.check(Task::Regression).is_ok());
        let e = Loss::Mse.check(Task::Classify).unwrap_err().to_string();
        assert_eq!(e, "loss 'mse' does not fit a classify head; valid: cross_entropy");
        let e = Loss::CrossEntropy.check(Task::Regression).unwrap_err().to_string();
        assert!(e.ends_with("valid: mse, mae, huber"), "{e}");
    }
}

/// A batch's training loss: the model's own where it has one (a language
/// model's chunked cross-entropy), else its outputs against `loss`.
/// The forward pass runs in `precision`; the loss reads its outputs in fp32
/// (a language model's chunked loss takes the softmax of each chunk in fp32).
pub(super) fn batch_loss(model: &dyn Learner, batch: &Batch, loss: Loss, class_weights: Option<&Tensor>, label_smoothing: f64, precision: Precision) -> anyhow::Result<Tensor> {
    match precision.run(model.device(), || model.own_loss(&batch.inputs, &batch.labels, true)) {
        Some(own) => own,
        None => {
            let outputs = precision.run(model.device(), || model.forward(&batch.inputs, true))?.to_kind(tch::Kind::Float);
            Ok(loss.compute(&outputs, &batch.labels, class_weights, label_smoothing))
        }
    }
}
