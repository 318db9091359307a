//! Evaluation: the loss and the task's metrics of a model over a loader,
//! without gradients, summed over the ranks of a distributed run.

use crate::runtime::precision::Precision;
use std::sync::atomic::Ordering;

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use super::events::StopFlag;
use super::history::EvalResult;
use super::loss::Loss;
use super::metrics::{Confusion, MultiLabelCounts, RegressionScores};
use crate::data::DataLoader;
use crate::model::Learner;
use crate::task::Task;

/// Batches the loader thread prepares ahead of training and evaluation.
pub(super) const PREFETCH_AHEAD: usize = 2;

/// Refuses data labelled for another task than the head's, or with more
/// classes (or other label counts) than the head has.
pub(super) fn check_labels(model: &dyn Learner, data: &DataLoader) -> Result<()> {
    if !data.targets().is_labelled() {
        bail!("{} has no labels: it is data to predict on (predict(model, dataset)); to train or evaluate, load data with a label column (label: \"...\") or class subfolders", data.name());
    }
    let task = data.task();
    if task != model.task() {
        bail!(
            "the data is labelled for {} but the model's head is for {}; load the model with task: \"{}\"{}",
            task.name(),
            model.task().name(),
            task.name(),
            if matches!(task, Task::Classify | Task::Tokens) { String::new() } else { format!(" and labels: {}", data.label_names().len()) }
        );
    }
    if task == Task::NextToken && data.loss_weight(&(0..data.rows()).collect::<Vec<_>>()) == 0.0 {
        // Its loss would be 0 at every step, and nothing would train.
        bail!(
            "{} has no token to learn: max_len cut off every answer (or the rows have none); raise max_len when tokenizing, or shorten the prompts (a chat without a system message gets the chat template's default one)",
            data.name()
        );
    }
    if matches!(task, Task::MultiLabel | Task::Regression) && data.label_names().len() != model.labels().len() {
        let what = if task == Task::Regression { "outputs" } else { "labels" };
        bail!(
            "the data has {} {what} ({}) but the model's head has {}; load the model with labels: {}",
            data.label_names().len(),
            data.label_names().join(", "),
            model.labels().len(),
            data.label_names().len()
        );
    }
    if data.label_names().len() > model.labels().len() {
        bail!(
            "the data has {} classes ({}) but the model's head has {} ({}); load the model with labels: {}",
            data.label_names().len(),
            data.label_names().join(", "),
            model.labels().len(),
            model.labels().join(", "),
            data.label_names().len()
        );
    }
    Ok(())
}

/// What an evaluation counted, by task: the per-class and per-label
/// scores come from it.
#[derive(Debug, Clone, PartialEq)]
pub enum EvalDetail {
    /// Single-label classification: the confusion matrix.
    Classes(Confusion),
    /// Multi-label classification: counts per label.
    MultiLabel(MultiLabelCounts),
    /// Regression: predictions and targets.
    Regression(RegressionScores),
    /// Language modelling: the loss (and its perplexity) is all.
    NextToken,
}

/// The loss and the task's metrics of `model` on every batch of `data`,
/// without gradients.
pub fn evaluate(model: &dyn Learner, data: &DataLoader) -> Result<EvalResult> {
    Ok(evaluate_detailed(model, data)?.0)
}

/// As `evaluate`, with what it counted (the confusion matrix, per-label
/// counts, or the predictions of a regression).
pub fn evaluate_detailed(model: &dyn Learner, data: &DataLoader) -> Result<(EvalResult, EvalDetail)> {
    evaluate_detailed_in(model, data, Precision::Fp32)
}

/// As `evaluate_detailed`, with the forward passes in `precision`
/// (autocast; the loss and metrics read the outputs in fp32).
pub fn evaluate_detailed_in(model: &dyn Learner, data: &DataLoader, precision: Precision) -> Result<(EvalResult, EvalDetail)> {
    check_labels(model, data)?;
    Ok(evaluate_with_stop(model, data, None, precision, &mut |_, _| {})?.expect("no stop flag, so evaluation runs to the end"))
}

/// As `evaluate_detailed`, but returns `None` if `stop` is set between
/// batches, and tells `progress` (batches done, batches) after each batch;
/// the forward pass runs in `precision`.
pub(super) fn evaluate_with_stop(model: &dyn Learner, data: &DataLoader, stop: Option<&StopFlag>, precision: Precision, progress: &mut dyn FnMut(usize, usize)) -> Result<Option<(EvalResult, EvalDetail)>> {
    let device = model.device();
    let task = model.task();
    let loss_kind = Loss::default_for(task);
    let (mut loss_sum, mut rows, mut weight) = (0.0, 0usize, 0.0);
    let mut detail = match task {
        Task::Classify | Task::Tokens => EvalDetail::Classes(Confusion::new(model.labels().len())),
        Task::MultiLabel => EvalDetail::MultiLabel(MultiLabelCounts::new(model.labels().len())),
        Task::Regression => EvalDetail::Regression(RegressionScores::new(model.labels().len())),
        Task::NextToken => EvalDetail::NextToken,
    };
    let _guard = tch::no_grad_guard();
    let floats = |t: &Tensor| Vec::<f32>::try_from(t.to_kind(Kind::Float).flatten(0, -1).to_device(Device::Cpu)).unwrap_or_default();
    let dist = crate::distributed::current();
    let batches = match dist {
        // Each rank evaluates its shard; the counts are summed below. A
        // stop request waits for the end, so that the ranks finish together.
        Some(g) => data.batch_indices(0).iter().map(|b| crate::distributed::shard(b, g.rank(), g.world_size())).filter(|b| !b.is_empty()).collect(),
        None => data.batch_indices(0),
    };
    let stop = if dist.is_some() { None } else { stop };
    let total_batches = batches.len();
    let mut prepared = data.prefetch(batches, None, PREFETCH_AHEAD, device)?;
    let mut done_batches = 0;
    while let Some(batch) = prepared.next_batch()? {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return Ok(None);
        }
        let batch = batch.to_device(device);
        // A model's own loss (a language model's, which needs no [tokens, vocab] logits) leaves no outputs to score.
        let (loss, outputs) = match precision.run(device, || model.own_loss(&batch.inputs, &batch.labels, false)) {
            Some(loss) => (loss?.double_value(&[]), None),
            None => {
                let outputs = precision.run(device, || model.forward(&batch.inputs, false))?.to_kind(Kind::Float);
                (loss_kind.compute(&outputs, &batch.labels, None, 0.0).double_value(&[]), Some(outputs))
            }
        };
        // The mean is over rows, or over labelled tokens for token and language-model data.
        let counted = if matches!(task, Task::Tokens | Task::NextToken) { batch.labels.ne(-100).sum(Kind::Int64).int64_value(&[]) as f64 } else { batch.size as f64 };
        if counted > 0.0 {
            loss_sum += loss * counted;
            weight += counted;
        }
        match (&mut detail, outputs) {
            (EvalDetail::NextToken, _) | (_, None) => {}
            (EvalDetail::Classes(confusion), Some(outputs)) => {
                // Token data: -100 marks padding and continuation tokens, which `add` skips.
                let predicted = Vec::<i64>::try_from(outputs.argmax(-1, false).flatten(0, -1).to_device(Device::Cpu)).unwrap_or_default();
                let truth = Vec::<i64>::try_from(batch.labels.flatten(0, -1).to_device(Device::Cpu)).unwrap_or_default();
                confusion.add(&truth, &predicted);
            }
            (EvalDetail::MultiLabel(counts), Some(outputs)) => counts.add(&floats(&batch.labels), &floats(&outputs.ge(0.0))),
            (EvalDetail::Regression(scores), Some(outputs)) => scores.add(&floats(&batch.labels), &floats(&outputs)),
        }
        rows += batch.size;
        done_batches += 1;
        progress(done_batches, total_batches);
    }
    if let Some(g) = dist {
        (loss_sum, weight, rows) = sum_evaluation(g, loss_sum, weight, rows, &mut detail)?;
    }
    let mut result = EvalResult { loss: loss_sum / weight.max(1.0), task, accuracy: None, f1: None, mse: None, mae: None, r2: None, rows };
    match &detail {
        EvalDetail::Classes(c) => (result.accuracy, result.f1) = (Some(c.accuracy()), Some(c.macro_scores().2)),
        EvalDetail::MultiLabel(c) => (result.accuracy, result.f1) = (Some(c.exact_match()), Some(c.macro_scores().2)),
        EvalDetail::Regression(r) => (result.mse, result.mae, result.r2) = (Some(r.mse()), Some(r.mae()), Some(r.r2())),
        EvalDetail::NextToken => {}
    }
    Ok(Some((result, detail)))
}

/// Sums one evaluation's loss, weights, rows and counts over the ranks
/// (a regression's predictions are gathered).
fn sum_evaluation(group: &crate::distributed::ProcessGroup, loss_sum: f64, weight: f64, rows: usize, detail: &mut EvalDetail) -> Result<(f64, f64, usize)> {
    use crate::distributed::ReduceOp;
    let totals = Vec::<f64>::try_from(&group.all_reduce(&[Tensor::from_slice(&[loss_sum, weight, rows as f64])], ReduceOp::Sum)?[0])?;
    let sum_counts = |counts: Vec<i64>| -> Result<Vec<i64>> { Ok(Vec::<i64>::try_from(&group.all_reduce(&[Tensor::from_slice(&counts)], ReduceOp::Sum)?[0])?) };
    match detail {
        EvalDetail::Classes(c) => {
            let n = c.counts.len();
            let summed = sum_counts(c.counts.iter().flatten().copied().collect())?;
            c.counts = summed.chunks(n.max(1)).map(<[i64]>::to_vec).collect();
        }
        EvalDetail::MultiLabel(c) => {
            let mut flat: Vec<i64> = c.counts.iter().flat_map(|&(tp, fp, fn_)| [tp, fp, fn_]).collect();
            flat.extend([c.exact, c.rows]);
            let summed = sum_counts(flat)?;
            let labels = c.counts.len();
            c.counts = summed[..3 * labels].chunks(3).map(|x| (x[0], x[1], x[2])).collect();
            (c.exact, c.rows) = (summed[3 * labels], summed[3 * labels + 1]);
        }
        EvalDetail::NextToken => {}
        EvalDetail::Regression(r) => {
            let (predicted, truth) = r.values();
            *r = RegressionScores::from_values(r.outputs(), group.all_gather_f64(predicted)?, group.all_gather_f64(truth)?);
        }
    }
    Ok((totals[0], totals[1], totals[2].round() as usize))
}
