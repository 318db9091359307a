//! What training needs of a model, whatever its inputs: text encoders and
//! image networks both implement it, so `fit`, `evaluate` and `lr_find`
//! serve both.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use tch::{Device, Tensor};

use super::{LayerGroup, ModelSummary};
use crate::data::Inputs;
use crate::task::Task;

/// A trainable model with a head for one task.
pub trait Learner {
    /// The head's raw outputs `[batch, labels]` for a batch of inputs;
    /// dropout acts only when `train`.
    fn forward(&self, inputs: &Inputs, train: bool) -> Result<Tensor>;
    /// The training loss of a batch, where the model computes it better
    /// than `forward` followed by the task's loss: a language model's
    /// chunked cross-entropy, which never keeps `[tokens, vocab]` logits.
    /// The mean over label tokens (labels as the loader gives them);
    /// `None` for models without one.
    fn own_loss(&self, _inputs: &Inputs, _labels: &Tensor, _train: bool) -> Option<Result<Tensor>> {
        None
    }
    /// The model as its own type, for callers that do more than train it
    /// (a language model's sampling hook generates with it).
    fn as_any(&self) -> &dyn std::any::Any;
    /// What the head predicts.
    fn task(&self) -> Task;
    /// The names of the head's outputs.
    fn labels(&self) -> &[String];
    /// Renames the head's outputs (the count stays).
    fn set_labels(&mut self, labels: Vec<String>);
    /// Where the parameters are.
    fn device(&self) -> Device;
    /// Every parameter with its name, in model order.
    fn named_parameters(&self) -> Vec<(String, Tensor)>;
    /// State that training changes without gradients (BatchNorm running
    /// statistics), saved and restored with the parameters.
    fn buffers(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }
    /// The parameters and the buffers: what a checkpoint holds and what
    /// early stopping puts back.
    fn state(&self) -> Vec<(String, Tensor)> {
        let mut all = self.named_parameters();
        all.extend(self.buffers());
        all
    }
    /// Trainable and frozen parameters per module.
    fn summary(&self) -> ModelSummary;
    /// Parameter groups from the top of the model down, the head first.
    fn layer_groups(&self) -> Vec<LayerGroup>;
    /// The parameter names a selector names (a module path, a range, a glob
    /// or a kind); an error lists the valid names.
    fn select(&self, selector: &str) -> Result<Vec<String>>;
    /// The stack of layers that `trainable_layers` counts: its module path
    /// (`encoder.layer`) and its number of layers.
    fn layer_stack(&self) -> (&'static str, i64);
    /// Saves the model into the folder `dir`, written atomically (the
    /// folder's old contents stay until the new ones are complete); returns
    /// the folder's path.
    fn save(&self, dir: &Path) -> Result<PathBuf>;

    /// Turns gradient checkpointing of the transformer blocks on or off for
    /// the forward passes that train (`BlockRun::Checkpointed`): each
    /// block's activations are made again in the backward pass instead of
    /// kept. An error for models without a stack of blocks.
    ///
    /// # Safety
    /// While it is on, the graph of every training pass must be consumed
    /// (or dropped) before the model is dropped or changed: its backward
    /// pass runs the model's blocks again.
    unsafe fn set_checkpointing(&mut self, on: bool) -> Result<()> {
        if on {
            bail!("gradient checkpointing recomputes transformer blocks, and this model has none; image networks train without it (lower the batch or the image size instead)");
        }
        Ok(())
    }

    /// Trains the head and the last `n` layers of the stack (the first `-n`
    /// when `n` is negative, as LLaMA-Factory's `freeze_trainable_layers`);
    /// everything else is frozen.
    fn trainable_layers(&mut self, n: i64) -> Result<usize> {
        let (stack, layers) = self.layer_stack();
        if n == 0 || n.abs() > layers {
            bail!("trainable_layers({n}): this model has {layers} layers; give 1 to {layers} (the last n) or -1 to -{layers} (the first n)");
        }
        let range = if n > 0 { (layers - n)..layers } else { 0..(-n) };
        let mut selectors = vec!["head".to_string()];
        selectors.extend(range.map(|i| format!("{stack}.{i}")));
        self.train_only(&selectors)
    }

    /// Remembers how training inputs were normalized (image models keep it
    /// to normalize what they predict on); others ignore it.
    fn adopt_input_normalization(&mut self, _normalize: Option<&(Vec<f32>, Vec<f32>)>) {}

    /// Whether the forward pass never reads this parameter (it then stays
    /// frozen, so that counts tell the truth).
    fn is_unused(&self, _name: &str) -> bool {
        false
    }

    /// Sets whether the parameters a selector names train; returns how many
    /// tensors it names.
    fn set_trainable(&mut self, selector: &str, trainable: bool) -> Result<usize> {
        let chosen = self.select(selector)?;
        set_requires_grad(self, &chosen, trainable);
        Ok(chosen.len())
    }

    /// Freezes everything, then unfreezes what the selectors name (all
    /// selectors are checked before anything changes).
    fn train_only(&mut self, selectors: &[String]) -> Result<usize> {
        if selectors.is_empty() {
            bail!("train_only needs at least one selector, e.g. \"head\"");
        }
        let mut chosen = Vec::new();
        for s in selectors {
            chosen.extend(self.select(s)?);
        }
        self.set_all_trainable(false);
        set_requires_grad(self, &chosen, true);
        Ok(chosen.len())
    }

    /// Freezes (`false`) or unfreezes (`true`) every parameter the model uses.
    fn set_all_trainable(&mut self, trainable: bool) {
        for (name, t) in self.named_parameters() {
            let _ = t.set_requires_grad(trainable && !self.is_unused(&name));
        }
    }

    /// The parameters that `weights: "bf16"` may store in bf16: the weight
    /// matrices of the stack's blocks (never LoRA's or adapters') and the
    /// embedding tables, with a language model's head; every forward pass
    /// reads them through `layers::weight_for` or `layers::lookup`. Image
    /// networks have none.
    fn bf16_storable(&self) -> Vec<String> {
        let (stack, _) = self.layer_stack();
        let in_stack = format!("{stack}.");
        let table = |n: &str| ["embeddings.weight", "embed_tokens.weight", "wte.weight", "wpe.weight"].iter().any(|s| n.ends_with(s)) || n == "lm_head.weight";
        self.named_parameters()
            .into_iter()
            .filter(|(n, t)| t.dim() == 2 && t.kind() == tch::Kind::Float && !crate::model::LoraConfig::is_lora_variable(n) && !n.contains(".adapter.") && (n.starts_with(&in_stack) || table(n)))
            .map(|(n, _)| n)
            .collect()
    }

    /// Whether each parameter trains, by name.
    fn trainable_mask(&self) -> Vec<(String, bool)> {
        self.named_parameters().into_iter().map(|(n, t)| (n, t.requires_grad())).collect()
    }

    /// Puts back what `trainable_mask` returned.
    fn set_trainable_mask(&mut self, mask: &[(String, bool)]) {
        let by_name: std::collections::HashMap<&str, bool> = mask.iter().map(|(n, b)| (n.as_str(), *b)).collect();
        for (name, t) in self.named_parameters() {
            if let Some(&b) = by_name.get(name.as_str()) {
                let _ = t.set_requires_grad(b);
            }
        }
    }
}

/// Stores the weights `bf16_storable` names in bf16 (`weights: "bf16"`),
/// halving their memory; returns how many bytes that saved. Frozen ones
/// stay so; `fit` gives back fp32 to those it trains
/// (`trained_weights_in_fp32`). An error for models that have none.
pub fn store_weights_in_bf16(model: &dyn Learner) -> Result<usize> {
    let names = model.bf16_storable();
    if names.is_empty() && model.summary().storage.bf16 == 0 {
        bail!("weights: \"bf16\" stores the weight matrices and embedding tables of text encoders and language models; this model has none that it can store so (keep the default, fp32)");
    }
    let wanted: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
    let mut saved = 0;
    for (name, mut t) in model.named_parameters() {
        if wanted.contains(name.as_str()) {
            saved += t.numel() * 2;
            let lower = tch::no_grad(|| t.to_kind(tch::Kind::BFloat16));
            t.set_data(&lower);
        }
    }
    Ok(saved)
}

/// Gives every trainable parameter stored in a lower precision fp32 again,
/// because an optimizer's small steps vanish in bf16 (master weights stay
/// fp32, as in mixed precision). Called where training starts.
pub fn trained_weights_in_fp32(model: &dyn Learner) {
    for (_, mut t) in model.named_parameters() {
        if t.requires_grad() && t.is_floating_point() && t.kind() != tch::Kind::Float {
            let full = tch::no_grad(|| t.to_kind(tch::Kind::Float));
            t.set_data(&full);
        }
    }
}

/// Sets `requires_grad` on the named parameters.
fn set_requires_grad<L: Learner + ?Sized>(model: &L, names: &[String], trainable: bool) {
    let wanted: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
    for (name, t) in model.named_parameters() {
        if wanted.contains(name.as_str()) {
            let _ = t.set_requires_grad(trainable);
        }
    }
}

/// Writes the `Learner` methods that only read the model's `task`, `labels`
/// and `vs` (variable store) fields, which every model has.
macro_rules! learner_fields {
    () => {
        fn task(&self) -> crate::task::Task {
            self.task
        }
        fn labels(&self) -> &[String] {
            &self.labels
        }
        fn set_labels(&mut self, labels: Vec<String>) {
            self.labels = labels;
        }
        fn device(&self) -> tch::Device {
            self.vs.device()
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    };
}
pub(crate) use learner_fields;
