//! Freezing that changes during a run, and learning rates per layer group.
//!
//! Layer groups come from `Learner::layer_groups`, top first: the head, the
//! last transformer layer, ..., the first, then the embeddings.

use anyhow::{bail, Result};

use crate::model::{LayerGroup, Learner};

/// How the trainable part of the model grows over the run. A parameter
/// trains in an epoch when its group is open and it was trainable when
/// `fit` started; `fit` puts the starting freeze back at the end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unfreezing {
    /// ULMFiT's gradual unfreezing: the head alone first, then one more
    /// group from the top every `every` epochs.
    Gradual {
        /// Epochs per newly opened group.
        every: usize,
    },
    /// fastai's `fine_tune`: the head alone for this many epochs, then
    /// everything (Lightning's `BackboneFinetuning`).
    HeadFirst(usize),
}

impl Unfreezing {
    /// How many of `groups` groups, from the top, are open in `epoch` (1-based).
    pub fn open_groups(self, epoch: usize, groups: usize) -> usize {
        match self {
            Self::Gradual { every } => (1 + (epoch - 1) / every.max(1)).min(groups),
            Self::HeadFirst(n) => {
                if epoch <= n {
                    1
                } else {
                    groups
                }
            }
        }
    }
}

/// The learning rate of each group as a multiple of the base rate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LayerRates {
    /// Each group below the head trains at this factor times the group
    /// above it (ULMFiT's discriminative rates, ELECTRA's layer decay).
    pub decay: Option<f64>,
    /// Explicit rates for what selectors name, applied after the decay;
    /// when two name the same parameter, the first wins.
    pub groups: Vec<(String, f64)>,
}

impl LayerRates {
    /// Whether every parameter trains at the base rate.
    pub fn is_uniform(&self) -> bool {
        self.decay.is_none() && self.groups.is_empty()
    }

    /// The rate multiplier of every parameter, by name, given the base rate.
    pub fn scales(&self, model: &dyn Learner, base_lr: f64) -> Result<std::collections::HashMap<String, f64>> {
        let mut scales = std::collections::HashMap::new();
        for (depth, group) in model.layer_groups().iter().enumerate() {
            let scale = self.decay.map(|d| d.powi(depth as i32)).unwrap_or(1.0);
            for name in &group.params {
                scales.insert(name.clone(), scale);
            }
        }
        let mut assigned = std::collections::HashSet::new();
        for (selector, lr) in &self.groups {
            if lr.is_nan() || *lr < 0.0 {
                bail!("the learning rate for '{selector}' must be 0 or more, got {lr}");
            }
            for name in model.select(selector)? {
                if assigned.insert(name.clone()) {
                    scales.insert(name, lr / base_lr);
                }
            }
        }
        Ok(scales)
    }
}

/// The rate of each layer group (the first parameter's), for the run's log.
pub fn group_rates(groups: &[LayerGroup], scales: &std::collections::HashMap<String, f64>, base_lr: f64) -> Vec<(String, f64)> {
    groups
        .iter()
        .filter_map(|g| g.params.first().map(|p| (g.name.clone(), base_lr * scales.get(p).copied().unwrap_or(1.0))))
        .collect()
}

/// Gradual unfreezing: the layer groups open epoch by epoch, within what
/// trained at the start.
pub(super) struct GradualUnfreezing {
    /// How many groups are open at each epoch.
    pub(super) schedule: Unfreezing,
    /// What trained when the run started.
    pub(super) start_mask: Vec<(String, bool)>,
    /// The layer groups, top first.
    pub(super) groups: Vec<LayerGroup>,
}

impl GradualUnfreezing {
    /// Applies the schedule for `epoch`: a parameter trains when it did at
    /// the start and its group is open. Returns the open groups' names when
    /// that changed the model (always at epoch 1).
    pub(super) fn apply(&self, model: &mut dyn Learner, epoch: usize) -> Option<Vec<String>> {
        let open = self.schedule.open_groups(epoch, self.groups.len());
        let open_names: std::collections::HashSet<&str> = self.groups[..open].iter().flat_map(|g| g.params.iter().map(String::as_str)).collect();
        let before = model.trainable_mask();
        let mask: Vec<(String, bool)> = self.start_mask.iter().map(|(n, t)| (n.clone(), *t && open_names.contains(n.as_str()))).collect();
        model.set_trainable_mask(&mask);
        (before != mask || epoch == 1).then(|| self.groups[..open].iter().map(|g| g.name.clone()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::Unfreezing;

    #[test]
    fn gradual_unfreezing_opens_one_group_every_k_epochs_up_to_all() {
        let g = Unfreezing::Gradual { every: 2 };
        let open: Vec<usize> = (1..=9).map(|e| g.open_groups(e, 4)).collect();
        assert_eq!(open, [1, 1, 2, 2, 3, 3, 4, 4, 4]);
    }

    #[test]
    fn head_first_trains_the_head_alone_then_everything() {
        let h = Unfreezing::HeadFirst(2);
        let open: Vec<usize> = (1..=4).map(|e| h.open_groups(e, 8)).collect();
        assert_eq!(open, [1, 1, 8, 8]);
    }
}
