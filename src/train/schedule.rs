//! Learning-rate schedules, as multipliers of the base rate per step, with
//! the formulas of the libraries people compare against.

use anyhow::{bail, Result};

/// How the learning rate moves over training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// The base rate throughout (after any warmup).
    Constant,
    /// Linear warmup from 0, then linear decay to 0 at the last step
    /// (Hugging Face's `get_linear_schedule_with_warmup`).
    Linear,
    /// Linear warmup from 0, then half a cosine down to 0 (Hugging Face's
    /// `get_cosine_schedule_with_warmup`).
    Cosine,
    /// One cycle (PyTorch's `OneCycleLR` with cosine annealing and
    /// `cycle_momentum=False`: Adam's beta1 stays put): from
    /// base/25 up to the base rate over the warmup share (0.3 if none is
    /// given), then down to base/25e4.
    OneCycle,
    /// The base rate (after any warmup), halved whenever the validation loss
    /// has not improved for an epoch (PyTorch's `ReduceLROnPlateau` with
    /// factor 0.5 and patience 1); `fit` applies the halving.
    ReduceOnPlateau,
}

/// `OneCycleLR`'s defaults.
const ONE_CYCLE_DIV: f64 = 25.0;
const ONE_CYCLE_FINAL_DIV: f64 = 1e4;
const ONE_CYCLE_PCT_START: f64 = 0.3;

impl Schedule {
    /// Valid names.
    pub const NAMES: &'static [&'static str] = &["constant", "linear", "cosine", "one_cycle", "reduce_on_plateau"];

    /// Parses a schedule name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "constant" => Ok(Self::Constant),
            "linear" => Ok(Self::Linear),
            "cosine" => Ok(Self::Cosine),
            "one_cycle" => Ok(Self::OneCycle),
            "reduce_on_plateau" => Ok(Self::ReduceOnPlateau),
            _ => bail!("unknown schedule '{s}'; valid: {}", Self::NAMES.join(", ")),
        }
    }

    /// The multiplier for optimizer step `step` (0-based) of `total`, after
    /// `warmup` warmup steps.
    pub fn factor(self, step: usize, total: usize, warmup: usize) -> f64 {
        if self == Self::OneCycle {
            return one_cycle(step, total, warmup);
        }
        if step < warmup {
            return step as f64 / warmup.max(1) as f64;
        }
        let progress = (step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
        match self {
            Self::Constant | Self::ReduceOnPlateau => 1.0,
            Self::Linear => (1.0 - progress).max(0.0),
            Self::Cosine => (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0),
            Self::OneCycle => unreachable!("handled above"),
        }
    }
}

/// `OneCycleLR`'s two cosine phases, as a multiple of the peak rate.
fn one_cycle(step: usize, total: usize, warmup: usize) -> f64 {
    let initial = 1.0 / ONE_CYCLE_DIV;
    let min = initial / ONE_CYCLE_FINAL_DIV;
    let pct_start = if warmup > 0 { warmup as f64 / total.max(1) as f64 } else { ONE_CYCLE_PCT_START };
    let up_end = pct_start * total as f64 - 1.0;
    let down_end = total as f64 - 1.0;
    let anneal = |start: f64, end: f64, pct: f64| end + (start - end) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0);
    let s = step as f64;
    if s <= up_end {
        anneal(initial, 1.0, s / up_end.max(1e-12))
    } else {
        anneal(1.0, min, ((s - up_end) / (down_end - up_end).max(1e-12)).min(1.0))
    }
}

/// Halves the rate when the validation loss stops improving, as PyTorch's
/// `ReduceLROnPlateau(mode="min", factor=0.5, patience=1, threshold=1e-4)`.
#[derive(Debug, Clone)]
pub struct Plateau {
    best: f64,
    bad_epochs: usize,
    /// The current multiplier.
    pub scale: f64,
}

impl Default for Plateau {
    fn default() -> Self {
        Self { best: f64::INFINITY, bad_epochs: 0, scale: 1.0 }
    }
}

impl Plateau {
    /// Its state for a checkpoint: scale, best loss, epochs without improvement.
    pub fn save(&self) -> (f64, f64, usize) {
        (self.scale, self.best, self.bad_epochs)
    }

    /// Puts back what `save` returned.
    pub fn restore(&mut self, scale: f64, best: f64, bad_epochs: usize) {
        (self.scale, self.best, self.bad_epochs) = (scale, best, bad_epochs);
    }

    /// Records an epoch's validation loss; returns true when it lowered the rate.
    pub fn update(&mut self, val_loss: f64) -> bool {
        if val_loss < self.best * (1.0 - 1e-4) {
            self.best = val_loss;
            self.bad_epochs = 0;
            return false;
        }
        self.bad_epochs += 1;
        if self.bad_epochs > 1 {
            self.scale *= 0.5;
            self.bad_epochs = 0;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_warms_up_then_decays_to_zero() {
        let s = Schedule::Linear;
        assert_eq!(s.factor(0, 100, 10), 0.0);
        assert!((s.factor(5, 100, 10) - 0.5).abs() < 1e-12);
        assert_eq!(s.factor(10, 100, 10), 1.0);
        assert!((s.factor(55, 100, 10) - 0.5).abs() < 1e-12);
        assert_eq!(s.factor(100, 100, 10), 0.0);
    }

    #[test]
    fn cosine_matches_hugging_face() {
        // transformers.get_cosine_schedule_with_warmup(opt, 10, 100): lr_lambda(step).
        let hf = |step: usize| if step < 10 { step as f64 / 10.0 } else { 0.5 * (1.0 + (std::f64::consts::PI * (step - 10) as f64 / 90.0).cos()) };
        for step in [0, 5, 10, 30, 55, 99, 100] {
            assert!((Schedule::Cosine.factor(step, 100, 10) - hf(step)).abs() < 1e-12, "step {step}");
        }
        assert!((Schedule::Cosine.factor(55, 100, 10) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn one_cycle_matches_pytorch() {
        // torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=100): the lr at steps 0, 1, 29, 50, 99
        // as PyTorch 2.11 prints them (max_lr / 25 first, the peak at step 29, max_lr / 25e4 last).
        let expected = [(0, 0.04), (1, 0.042_813_780_565_907_456), (29, 1.0), (50, 0.793_893_450_575_732), (99, 4e-6)];
        for (step, lr) in expected {
            let got = Schedule::OneCycle.factor(step, 100, 0);
            assert!((got - lr).abs() < 1e-9, "step {step}: {got} vs {lr}");
        }
    }

    #[test]
    fn plateau_halves_after_two_epochs_without_improvement() {
        let mut p = Plateau::default();
        assert!(!p.update(1.0));
        assert!(!p.update(0.9));
        assert!(!p.update(0.95));
        assert!(p.update(0.93));
        assert_eq!(p.scale, 0.5);
        assert!(!p.update(0.5));
        assert_eq!(p.scale, 0.5);
    }
}
