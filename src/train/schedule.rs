//! Learning-rate schedules, as multipliers of the base rate per step.

use anyhow::{bail, Result};

/// How the learning rate moves over training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Linear warmup from 0, then linear decay to 0 at the last step
    /// (Hugging Face's `get_linear_schedule_with_warmup`).
    Linear,
}

impl Schedule {
    /// Valid names.
    pub const NAMES: &'static [&'static str] = &["constant", "linear"];

    /// Parses a schedule name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "constant" => Ok(Self::Constant),
            "linear" => Ok(Self::Linear),
            _ => bail!("unknown schedule '{s}'; valid: {}", Self::NAMES.join(", ")),
        }
    }

    /// The multiplier for optimizer step `step` (0-based) of `total`, after
    /// `warmup` warmup steps.
    pub fn factor(self, step: usize, total: usize, warmup: usize) -> f64 {
        if step < warmup {
            return step as f64 / warmup.max(1) as f64;
        }
        match self {
            Self::Constant => 1.0,
            Self::Linear => ((total.saturating_sub(step)) as f64 / (total.saturating_sub(warmup)).max(1) as f64).max(0.0),
        }
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
}
