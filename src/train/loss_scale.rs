//! Dynamic loss scaling for fp16 training, as `torch.amp.GradScaler` does
//! it: the loss is multiplied by a large scale so that small gradients do
//! not underflow fp16; the gradients are divided back before clipping and
//! the update; a step whose gradients overflowed (inf or NaN) is skipped and
//! the scale halved; after a run of good steps the scale doubles.
//! Parity with PyTorch's scaler: tests/loss_scale_parity.rs.

use tch::{Device, Kind, Tensor};


/// `GradScaler`'s settings, with its defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScalerConfig {
    /// The first scale (2^16).
    pub init_scale: f64,
    /// What the scale is multiplied by after `growth_interval` good steps (2).
    pub growth_factor: f64,
    /// What it is multiplied by after an overflow (0.5).
    pub backoff_factor: f64,
    /// Good steps in a row before it grows (2000).
    pub growth_interval: i64,
}

impl Default for ScalerConfig {
    fn default() -> Self {
        Self { init_scale: 65536.0, growth_factor: 2.0, backoff_factor: 0.5, growth_interval: 2000 }
    }
}

/// The scale and its count of good steps, kept as tensors on the training
/// device (as PyTorch keeps them) so that checking and updating them costs
/// no synchronisation until the step asks whether to skip.
#[derive(Debug)]
pub struct LossScaler {
    config: ScalerConfig,
    scale: Tensor,
    growth_tracker: Tensor,
    skipped: usize,
}

impl LossScaler {
    /// A scaler at `config.init_scale`, on `device`.
    pub fn new(config: ScalerConfig, device: Device) -> Self {
        Self {
            config,
            scale: Tensor::full([1], config.init_scale, (Kind::Float, device)),
            growth_tracker: Tensor::zeros([1], (Kind::Int, device)),
            skipped: 0,
        }
    }

    /// `loss` times the scale.
    pub fn scale_loss(&self, loss: &Tensor) -> Tensor {
        loss * &self.scale
    }

    /// Divides `grads` by the scale in place (one fused call over all of
    /// them) and says whether any of them held an inf or a NaN, in which
    /// case the step must be skipped. Undefined gradients are left alone.
    pub fn unscale(&self, grads: &mut [Tensor]) -> anyhow::Result<bool> {
        // The reciprocal in double, then fp32, as PyTorch computes it.
        let mut inv_scale = self.scale.to_kind(Kind::Double).reciprocal().to_kind(Kind::Float);
        let mut found_inf = Tensor::zeros([1], (Kind::Float, self.scale.device()));
        crate::runtime::precision::unscale_in_place(grads, &mut found_inf, &mut inv_scale)?;
        Ok(found_inf.double_value(&[0]) != 0.0)
    }

    /// Backs the scale off after an overflow, or counts a good step and
    /// grows it after `growth_interval` of them (libtorch's
    /// `_amp_update_scale_`, the rule PyTorch's scaler applies).
    pub fn update(&mut self, found_inf: bool) {
        let found = Tensor::full([1], if found_inf { 1.0 } else { 0.0 }, (Kind::Float, self.scale.device()));
        let _ = self.scale.internal_amp_update_scale_(&self.growth_tracker, &found, self.config.growth_factor, self.config.backoff_factor, self.config.growth_interval);
        if found_inf {
            self.skipped += 1;
        }
    }

    /// The scale now.
    pub fn scale(&self) -> f64 {
        self.scale.double_value(&[0])
    }

    /// Steps skipped for overflow so far.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// What a checkpoint keeps: the scale, the good steps in a row, and the
    /// steps skipped.
    pub fn save(&self) -> (f64, i64, usize) {
        (self.scale(), self.growth_tracker.int64_value(&[0]), self.skipped)
    }

    /// Takes up the state `save` returned.
    pub fn restore(&mut self, (scale, growth, skipped): (f64, i64, usize)) {
        let device = self.scale.device();
        self.scale = Tensor::full([1], scale, (Kind::Float, device));
        self.growth_tracker = Tensor::full([1], growth, (Kind::Int, device));
        self.skipped = skipped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grads(values: &[f32]) -> Vec<Tensor> {
        vec![Tensor::from_slice(values), Tensor::new()]
    }

    #[test]
    fn unscales_in_place_and_finds_overflow() {
        let scaler = LossScaler::new(ScalerConfig { init_scale: 4.0, ..Default::default() }, Device::Cpu);
        let mut good = grads(&[4.0, -8.0]);
        assert!(!scaler.unscale(&mut good).unwrap());
        assert_eq!(Vec::<f32>::try_from(&good[0]).unwrap(), vec![1.0, -2.0]);
        assert!(!good[1].defined());
        for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
            assert!(scaler.unscale(&mut grads(&[1.0, bad])).unwrap());
        }
    }

    #[test]
    fn backs_off_on_overflow_and_grows_after_the_interval() {
        let mut s = LossScaler::new(ScalerConfig { init_scale: 8.0, growth_interval: 3, ..Default::default() }, Device::Cpu);
        s.update(true);
        assert_eq!((s.scale(), s.skipped()), (4.0, 1));
        s.update(false);
        s.update(false);
        assert_eq!(s.scale(), 4.0);
        s.update(false);
        assert_eq!(s.scale(), 8.0);
        // An overflow resets the run of good steps.
        s.update(false);
        s.update(true);
        s.update(false);
        s.update(false);
        assert_eq!(s.scale(), 4.0);
        let saved = s.save();
        assert_eq!(saved, (4.0, 2, 2));
        let mut t = LossScaler::new(ScalerConfig { growth_interval: 3, ..Default::default() }, Device::Cpu);
        t.restore(saved);
        t.update(false);
        assert_eq!(t.scale(), 8.0, "the restored count of good steps carries on");
    }
}
