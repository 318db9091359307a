//! Per layer group, how much the weights move and how large the gradients
//! are during a run: which layers actually learn.

use std::collections::HashMap;

use tch::{Kind, Tensor};

use crate::model::Learner;

/// One layer group at the end of one epoch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerStats {
    /// 1-based epoch.
    pub epoch: usize,
    /// The layer group, e.g. `head`, `encoder.layer.5`, `embeddings`.
    pub group: String,
    /// The group's weight norm (all its tensors as one vector).
    pub weight_norm: f64,
    /// ‖W − W₀‖ / ‖W₀‖: how far the group moved since the run started.
    pub change: f64,
    /// The mean over the epoch's steps of the group's gradient norm (0 when frozen).
    pub grad_norm: f64,
}

/// Collects [`LayerStats`] during `fit` (with `track_layers`). It keeps a
/// copy of the starting weights: memory for one more model.
pub(crate) struct LayerTracker {
    groups: Vec<String>,
    /// Per group, its (live tensor, starting copy) pairs.
    tensors: Vec<Vec<(Tensor, Tensor)>>,
    group_of: HashMap<String, usize>,
    grad_norm_sums: Vec<f64>,
    steps: usize,
}

impl LayerTracker {
    /// A tracker over the model's layer groups as they are now.
    pub(crate) fn new(model: &dyn Learner) -> Self {
        let groups = model.layer_groups();
        let mut group_of = HashMap::new();
        for (g, group) in groups.iter().enumerate() {
            for p in &group.params {
                group_of.insert(p.clone(), g);
            }
        }
        let mut tensors: Vec<Vec<(Tensor, Tensor)>> = (0..groups.len()).map(|_| Vec::new()).collect();
        for (name, t) in model.named_parameters() {
            if let Some(&g) = group_of.get(&name) {
                let start = tch::no_grad(|| t.detach().copy());
                tensors[g].push((t, start));
            }
        }
        Self { grad_norm_sums: vec![0.0; groups.len()], groups: groups.into_iter().map(|g| g.name).collect(), tensors, group_of, steps: 0 }
    }

    /// Adds one step's gradients, named as the parameters they belong to.
    pub(crate) fn add_step(&mut self, names: &[String], grads: &[Tensor]) {
        let mut squares: Vec<Vec<Tensor>> = (0..self.groups.len()).map(|_| Vec::new()).collect();
        tch::no_grad(|| {
            for (name, g) in names.iter().zip(grads) {
                if let (Some(&group), true) = (self.group_of.get(name), g.defined()) {
                    squares[group].push(g.to_kind(Kind::Float).square().sum(Kind::Float));
                }
            }
        });
        // One transfer for all groups rather than one per tensor.
        let sums: Vec<Tensor> = squares.iter().map(|s| if s.is_empty() { Tensor::from(0f32) } else { Tensor::stack(s, 0).sum(Kind::Float).to_device(tch::Device::Cpu) }).collect();
        for (total, s) in self.grad_norm_sums.iter_mut().zip(sums) {
            *total += s.double_value(&[]).sqrt();
        }
        self.steps += 1;
    }

    /// The epoch's stats per group; the gradient sums start again.
    pub(crate) fn epoch_end(&mut self, epoch: usize) -> Vec<LayerStats> {
        let steps = self.steps.max(1) as f64;
        let out = self
            .groups
            .iter()
            .zip(&self.tensors)
            .zip(&self.grad_norm_sums)
            .map(|((group, tensors), grad_sum)| {
                let (mut weight, mut start, mut moved) = (0.0, 0.0, 0.0);
                tch::no_grad(|| {
                    for (live, first) in tensors {
                        let live = live.to_kind(Kind::Float);
                        let first = first.to_kind(Kind::Float);
                        weight += live.square().sum(Kind::Float).double_value(&[]);
                        start += first.square().sum(Kind::Float).double_value(&[]);
                        moved += (&live - &first).square().sum(Kind::Float).double_value(&[]);
                    }
                });
                LayerStats { epoch, group: group.clone(), weight_norm: weight.sqrt(), change: if start > 0.0 { (moved / start).sqrt() } else { 0.0 }, grad_norm: grad_sum / steps }
            })
            .collect();
        self.grad_norm_sums.iter_mut().for_each(|s| *s = 0.0);
        self.steps = 0;
        out
    }
}
