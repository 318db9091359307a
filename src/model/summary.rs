//! What trains and what is frozen: parameter counts per module, in model
//! order, for `summary()` and the freeze chart.

use tch::Device;

use super::Pooling;
use crate::numbers::{group_digits, percent};
use crate::task::Task;

/// One row of `ModelSummary`.
#[derive(Debug, Clone)]
pub struct ModuleCount {
    /// Module path, e.g. `encoder.layer.3`.
    pub module: String,
    /// Parameters that train.
    pub trainable: i64,
    /// Parameters that are frozen.
    pub frozen: i64,
}

/// What trains and what is frozen, per module.
#[derive(Debug, Clone)]
pub struct ModelSummary {
    /// The model's name.
    pub name: String,
    /// Class names.
    pub labels: Vec<String>,
    /// What the head predicts.
    pub task: Task,
    /// Pooling used by the head (text models).
    pub pooling: Option<Pooling>,
    /// Where the model is.
    pub device: Device,
    /// Counts per module, in model order.
    pub rows: Vec<ModuleCount>,
    /// BatchNorm layers and how many have frozen statistics (image backbones).
    pub batch_norm: Option<BatchNormCount>,
    /// How the parameters are stored: bf16 ones (`weights: "bf16"`) and bytes.
    pub storage: WeightStorage,
}

/// How much memory a model's parameters take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WeightStorage {
    /// Parameters stored in bf16.
    pub bf16: i64,
    /// Bytes of all parameters.
    pub bytes: i64,
}

impl WeightStorage {
    /// The storage of these parameters.
    pub fn of<'a>(params: impl IntoIterator<Item = &'a tch::Tensor>) -> Self {
        let mut s = Self::default();
        for t in params {
            let n = t.numel() as i64;
            if t.kind() == tch::Kind::BFloat16 {
                s.bf16 += n;
            }
            s.bytes += n * t.kind().elt_size_in_bytes() as i64;
        }
        s
    }
}

/// A model's BatchNorm layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchNormCount {
    /// BatchNorm layers.
    pub layers: usize,
    /// Those whose weights are frozen, which keeps them in evaluation mode
    /// while the rest trains, so their running statistics stay put.
    pub frozen: usize,
}

impl ModelSummary {
    /// Parameters that train.
    pub fn trainable(&self) -> i64 {
        self.rows.iter().map(|r| r.trainable).sum()
    }
    /// All parameters.
    pub fn total(&self) -> i64 {
        self.rows.iter().map(|r| r.trainable + r.frozen).sum()
    }
}

impl std::fmt::Display for ModelSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.task {
            Task::Classify => "labels",
            Task::MultiLabel => "multi-label labels",
            Task::Regression => "regression outputs",
            Task::Tokens => "token labels",
            Task::NextToken => "next-token outputs",
        };
        let pooling = self.pooling.map(|p| format!("; pooling {}", p.name())).unwrap_or_default();
        let names = if self.labels.len() > 12 { format!("{}, ... {}", self.labels[..5].join(", "), self.labels[self.labels.len() - 1]) } else { self.labels.join(", ") };
        writeln!(f, "Model {} ({} {what}: {names}{pooling}; {:?})", self.name, self.labels.len(), self.device)?;
        writeln!(f, "{:<24} {:>12} {:>12}", "module", "trainable", "frozen")?;
        for r in &self.rows {
            writeln!(f, "{:<24} {:>12} {:>12}", r.module, group_digits(r.trainable), group_digits(r.frozen))?;
        }
        if let Some(bn) = self.batch_norm {
            writeln!(f, "BatchNorm: {} layers, {} with frozen statistics (kept in evaluation mode while training)", bn.layers, bn.frozen)?;
        }
        let (t, n) = (self.trainable(), self.total());
        if self.storage.bf16 > 0 {
            let mb = |b: i64| b as f64 / 1e6;
            writeln!(f, "weights: {} parameters stored in bf16; all take {:.1} MB (in fp32: {:.1} MB)", group_digits(self.storage.bf16), mb(self.storage.bytes), mb(4 * n))?;
        }
        write!(f, "trainable {} of {} parameters ({})", group_digits(t), group_digits(n), percent(t, n))
    }
}


/// The row a parameter is counted under in the summary: the layer for
/// encoder layers, else the top-level module.
pub(crate) fn summary_module(name: &str) -> String {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 2 && (parts[0] == "encoder" || parts[0] == "transformer") && parts[1] == "layer" {
        parts[..3].join(".")
    } else if parts.len() > 2 && parts[0] == "heads" {
        parts[..2].join(".")
    } else {
        parts[0].to_string()
    }
}

/// A name part that sorts numbers by value (`layer.10` after `layer.9`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum NaturalPart {
    /// A numeric part.
    Num(u64),
    /// Any other part.
    Text(String),
}

/// Sorts names in model order (embeddings, encoder layers by number,
/// pooler, then heads), numbers by value.
pub(crate) fn natural_key(name: &str) -> Vec<NaturalPart> {
    let rank = match name.split('.').next().unwrap_or("") {
        "embeddings" => 0,
        "encoder" | "transformer" => 1,
        "pooler" => 2,
        _ => 3,
    };
    std::iter::once(NaturalPart::Num(rank))
        .chain(name.split('.').map(|p| p.parse().map(NaturalPart::Num).unwrap_or_else(|_| NaturalPart::Text(p.to_string()))))
        .collect()
}

