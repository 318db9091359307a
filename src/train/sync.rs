//! Data-parallel gradient exchange for `fit`: hooks that all-reduce
//! gradient buckets while the backward pass runs, and the ranks' agreement
//! after each step on the loss, on stopping and on which gradients exist.

use anyhow::{bail, Result};
use tch::Tensor;

use crate::distributed::{OverlappedGradients, ProcessGroup, ReduceOp};
use crate::model::Learner;

/// Data-parallel gradient exchange: hooks that all-reduce gradient buckets
/// while the backward pass runs, and the ranks' agreement after each step.
pub(super) struct GradientSync {
    /// The ranks' process group.
    pub(super) group: &'static ProcessGroup,
    overlap: Option<OverlappedGradients>,
}

impl GradientSync {
    /// Gradient exchange over `group`; hooks come with the first step.
    pub(super) fn new(group: &'static ProcessGroup) -> Self {
        Self { group, overlap: None }
    }

    /// Every replica takes rank 0's weights, as DDP does at construction (a
    /// freshly initialized head differs between processes).
    pub(super) fn broadcast_weights(&self, model: &dyn Learner) -> Result<()> {
        let params: Vec<Tensor> = model.named_parameters().into_iter().map(|(_, t)| t).collect();
        let synced = self.group.broadcast(&params, 0)?;
        tch::no_grad(|| {
            for (p, s) in params.iter().zip(&synced) {
                p.shallow_clone().copy_(s);
            }
        });
        Ok(())
    }

    /// Hooks the parameters that train this step (new hooks when that set changed).
    pub(super) fn begin_step(&mut self, inputs: &[Tensor]) -> Result<()> {
        if !self.overlap.as_ref().is_some_and(|o| o.covers(inputs)) {
            drop(self.overlap.take()); // the old hooks go before new ones are added
            self.overlap = Some(OverlappedGradients::new(self.group, inputs)?);
        }
        if let Some(o) = self.overlap.as_mut() {
            o.begin_step();
        }
        Ok(())
    }

    /// The next backward pass is the step's last: its buckets may start.
    pub(super) fn last_backward(&mut self) {
        if let Some(o) = self.overlap.as_mut() {
            o.last_backward();
        }
    }

    /// The summed gradients, the ranks' summed loss, and whether any rank
    /// was asked to stop. Each rank's gradient is its rows' share of the
    /// global mean, so their sum is the gradient of the whole global batch.
    pub(super) fn finish_step(&mut self, loss: f64, stop: bool) -> Result<(Vec<Tensor>, f64, bool)> {
        let Some(o) = self.overlap.as_mut() else { bail!("a data-parallel step finished before it began") };
        let (summed, reported) = o.finish()?;
        let mut scalars: Vec<f64> = vec![loss, f64::from(u8::from(stop))];
        scalars.extend(reported.iter().map(|&r| f64::from(u8::from(r))));
        let totals = Vec::<f64>::try_from(&self.group.all_reduce(&[Tensor::from_slice(&scalars)], ReduceOp::Sum)?[0])?;
        // Gradients that no rank produced stay undefined, as on one process.
        let grads = summed.into_iter().zip(&totals[2..]).map(|(g, &n)| if n > 0.0 { g } else { Tensor::new() }).collect();
        Ok((grads, totals[0], totals[1] > 0.0))
    }
}

