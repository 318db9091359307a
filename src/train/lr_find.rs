//! The learning-rate range test (Smith 2015; fastai's `lr_find`): train a
//! few steps with the rate rising exponentially, watch the smoothed loss,
//! and suggest the rate where it falls fastest. The model's weights are
//! put back afterwards.

use std::sync::atomic::Ordering;

use anyhow::{bail, Result};
use tch::Tensor;

use super::fit::param_specs;
use super::{optim, FitOptions, StopFlag};
use crate::data::DataLoader;
use crate::model::Learner;

/// Settings of the range test.
#[derive(Debug, Clone, PartialEq)]
pub struct LrFindOptions {
    /// The first rate.
    pub start: f64,
    /// The last rate.
    pub end: f64,
    /// Steps (batches) at most.
    pub steps: usize,
}

impl Default for LrFindOptions {
    fn default() -> Self {
        Self { start: 1e-7, end: 10.0, steps: 100 }
    }
}

/// What the range test found.
#[derive(Debug, Clone, Default)]
pub struct LrFind {
    /// The rate of each step.
    pub lrs: Vec<f64>,
    /// The smoothed loss after each step.
    pub losses: Vec<f64>,
    /// Where the smoothed loss falls fastest (per unit of log rate).
    pub suggestion: f64,
    /// The rate with the lowest smoothed loss, divided by 10 (fastai's older rule).
    pub min_loss_lr: f64,
}

/// Runs the range test on `train` with `fit`'s optimizer and weight decay,
/// then restores every weight.
pub fn lr_find(model: &mut dyn Learner, train: &DataLoader, fit: &FitOptions, opts: &LrFindOptions, stop: &StopFlag) -> Result<LrFind> {
    if !(opts.start > 0.0 && opts.end > opts.start) {
        bail!("lr_find needs 0 < start < end, got start {} and end {}", opts.start, opts.end);
    }
    if opts.steps < 10 {
        bail!("lr_find needs at least 10 steps to see a trend, got {}", opts.steps);
    }
    if model.summary().trainable() == 0 {
        bail!("nothing to train: every parameter is frozen");
    }
    crate::model::trained_weights_in_fp32(model);
    let params = model.named_parameters();
    let saved: Vec<Tensor> = tch::no_grad(|| params.iter().map(|(_, t)| t.copy()).collect());
    let specs = param_specs(model, fit.weight_decay, &Default::default());
    let mut optimizer = optim::Optimizer::new(fit.optimizer, specs, fit.betas.0, fit.betas.1, fit.eps);
    let device = model.device();
    let mut result = LrFind::default();
    let (mut avg, mut best) = (0.0, f64::INFINITY);
    let ratio = (opts.end / opts.start).ln();
    'outer: for epoch in 1.. {
        for rows in train.batch_indices(epoch) {
            let i = result.lrs.len();
            if i >= opts.steps || stop.load(Ordering::Relaxed) {
                break 'outer;
            }
            let lr = opts.start * (ratio * i as f64 / (opts.steps - 1) as f64).exp();
            let batch = train.collate(&rows, device, Some(epoch))?;
            let loss = super::loss::batch_loss(model, &batch, super::Loss::default_for(model.task()), None, 0.0, Default::default())?;
            optimizer.zero_grad();
            loss.backward();
            optimizer.step(lr);
            let loss = loss.double_value(&[]);
            // fastai's smoothing: an exponential average, debiased.
            avg = 0.98 * avg + 0.02 * loss;
            let smoothed = avg / (1.0 - 0.98f64.powi(i as i32 + 1));
            if !smoothed.is_finite() || (i > 10 && smoothed > 4.0 * best) {
                break 'outer;
            }
            best = best.min(smoothed);
            result.lrs.push(lr);
            result.losses.push(smoothed);
        }
    }
    optimizer.zero_grad();
    tch::no_grad(|| {
        for ((_, p), s) in params.iter().zip(&saved) {
            p.shallow_clone().copy_(s);
        }
    });
    if result.lrs.len() < 5 {
        bail!("the loss diverged within {} steps; lower the start rate", result.lrs.len());
    }
    let (min_i, _) = result.losses.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).expect("at least 5 points");
    result.min_loss_lr = result.lrs[min_i] / 10.0;
    // The steepest fall, by finite differences over log(lr), up to the minimum.
    let steepest = (1..=min_i.max(1))
        .map(|i| (i, (result.losses[i] - result.losses[i - 1]) / (result.lrs[i].ln() - result.lrs[i - 1].ln())))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
        .unwrap_or(min_i);
    result.suggestion = result.lrs[steepest];
    Ok(result)
}
