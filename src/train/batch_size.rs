//! Finding a batch that fits in memory, as Hugging Face's
//! `auto_find_batch_size`: try a training step on the loader's batch size,
//! halve it on an allocation failure, and keep the effective batch with
//! gradient accumulation.

use anyhow::Result;
use tch::{Device, Kind, Tensor};

use super::fit::add_gradients;
use super::loss::{batch_loss, Loss};
use crate::data::{DataLoader, LoaderSource};
use crate::model::Learner;
use crate::runtime::memory::{catch_out_of_memory, OutOfMemory};
use crate::runtime::precision::Precision;

/// What `find_batch_size` found.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchFit {
    /// The largest batch (the loader's, halved as often as needed) whose
    /// step fitted.
    pub batch: usize,
    /// Batches to accumulate per step so that a step sees at least as many
    /// rows as the loader's batch did (exactly as many when the batch
    /// divides it).
    pub accumulate: usize,
    /// The batch sizes that did not fit, largest first, with how much the
    /// failed allocation asked for.
    pub failed: Vec<(usize, String)>,
}

/// Tries a training step (forward, loss, backward, and room for Adam's two
/// moments of every trainable tensor) on the `n` rows of `data` that make
/// the largest batch, for `n` = the loader's batch size, then its half, and
/// so on down to 1. A trial is a whole step: as many micro-batches as the
/// accumulation that keeps the loader's batch, their gradients summed, each
/// a quarter larger than the size tried (see [`HEADROOM`]). Nothing the
/// model learns is kept: no optimizer step is taken, and BatchNorm's
/// running statistics are put back.
pub fn find_batch_size(model: &dyn Learner, data: &DataLoader, precision: Precision) -> Result<BatchFit> {
    // Its trial steps hold what fit's would: fp32 trained weights.
    crate::model::trained_weights_in_fp32(model);
    let start = data.options.batch_size.min(data.rows());
    let order = largest_first(data);
    // Put back however the trials end, a panic included.
    let _restore = RestoreBuffers(model.buffers().into_iter().map(|(_, t)| (t.shallow_clone(), t.detach().copy())).collect());
    let mut failed = Vec::new();
    let mut batch = start;
    let outcome = loop {
        let rows: Vec<usize> = order.iter().copied().cycle().take(batch + batch / HEADROOM).collect();
        match catch_out_of_memory(|| trial_step(model, data, &rows, start.div_ceil(batch), precision)) {
            Ok(result) => break result,
            Err(oom) => {
                failed.push((batch, oom.requested().unwrap_or_else(|| "memory".into())));
                if batch == 1 {
                    break Err(one_row_too_big(data, &order[..1], &oom));
                }
                batch = batch.div_ceil(2);
            }
        }
    };
    outcome?;
    Ok(BatchFit { batch, accumulate: start.div_ceil(batch), failed })
}

/// A batch of `n` rows fits when trial micro-batches of `n + n / HEADROOM`
/// rows do. A real run needs more than the bare step: the loader's thread
/// and prefetched batches, and an allocator fragmented by the failed
/// trials. Measured under address-space caps of 1.8 to 3.4 GB (the script
/// of `tests/cli.rs`): after a trial of one bare micro-batch, `fit` failed
/// at the size found in 3 of 12 runs; after whole steps without headroom,
/// in 1 of 12; with both, in none of 30.
const HEADROOM: usize = 4;

/// BatchNorm's running statistics as they were, copied back when dropped.
struct RestoreBuffers(Vec<(Tensor, Tensor)>);

impl Drop for RestoreBuffers {
    fn drop(&mut self) {
        tch::no_grad(|| {
            for (live, saved) in &self.0 {
                live.shallow_clone().copy_(saved);
            }
        });
    }
}

/// Row indices with the longest texts first (padding makes the longest
/// rows the largest batch); other sources in their order.
fn largest_first(data: &DataLoader) -> Vec<usize> {
    let mut order: Vec<usize> = (0..data.rows()).collect();
    if let LoaderSource::Text(t) = &data.source {
        order.sort_by_key(|&i| std::cmp::Reverse(t.input_ids[i].len()));
    }
    order
}

/// One step's memory: `micro_batches` forward and backward passes on
/// `rows`, their gradients summed as `fit` accumulates them, with room for
/// Adam's two moments of every trainable tensor.
fn trial_step(model: &dyn Learner, data: &DataLoader, rows: &[usize], micro_batches: usize, precision: Precision) -> Result<()> {
    let device = model.device();
    let trainable: Vec<Tensor> = model.named_parameters().into_iter().map(|(_, t)| t).filter(Tensor::requires_grad).collect();
    let moments: Vec<Tensor> = trainable.iter().flat_map(|t| [t.zeros_like(), t.zeros_like()]).collect();
    let mut sum = Vec::new();
    for _ in 0..micro_batches {
        let batch = data.collate(rows, Device::Cpu, None)?.to_device(device);
        let loss = batch_loss(model, &batch, Loss::default_for(model.task()), None, 0.0, precision)?;
        add_gradients(&mut sum, Tensor::run_backward(&[loss.to_kind(Kind::Float)], &trainable, false, false));
    }
    drop((sum, moments));
    Ok(())
}

fn one_row_too_big(data: &DataLoader, rows: &[usize], oom: &OutOfMemory) -> anyhow::Error {
    let what = data.describe_rows(rows);
    let hint = match data.source {
        LoaderSource::Images(_) => "use smaller images (size:) or a smaller model",
        _ => "shorten max_len in tokenize, freeze more of the model (model.trainable_layers(n)) or use LoRA",
    };
    anyhow::anyhow!("even {what} does not fit in memory ({}); {hint}", oom.message)
}

