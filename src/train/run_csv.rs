//! A run's history as one CSV table for spreadsheets and pandas, in the
//! shape of Lightning's `CSVLogger`: one row per record, a `kind` column
//! (`step`, `eval`, `epoch`, `run`) and a column per value, blank where a
//! kind has none. `read` gives back what `plot`, `plot_costs` and `table`
//! need.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use super::history::{EpochRecord, EvalResult, StepEval, StepRecord, TrainRun};
use crate::task::Task;

/// The columns, in order.
const COLUMNS: &[&str] = &[
    "kind",
    "step",
    "epoch",
    "loss",
    "learning_rate",
    "grad_norm",
    "train_loss",
    "seconds",
    "task",
    "val_rows",
    "val_loss",
    "val_accuracy",
    "val_f1",
    "val_mse",
    "val_mae",
    "val_r2",
    "val_perplexity",
    "trainable_params",
    "total_params",
    "train_seconds",
    "samples_per_sec",
    "interrupted",
    "device",
];

/// The metrics of an evaluation that have their own `val_` column (the
/// loss and perplexity are written apart).
const METRICS: &[&str] = &["accuracy", "f1", "mse", "mae", "r2"];

/// One row as (column, value) pairs; the rest blank.
fn row(cells: &[(&str, String)]) -> Vec<String> {
    COLUMNS.iter().map(|c| cells.iter().find(|(name, _)| name == c).map(|(_, v)| v.clone()).unwrap_or_default()).collect()
}

fn eval_cells(v: &EvalResult) -> Vec<(&'static str, String)> {
    let mut cells = vec![("task", Task::NAMES[v.task as usize].to_string()), ("val_rows", v.rows.to_string()), ("val_loss", v.loss.to_string())];
    for (name, column) in METRICS.iter().zip(["val_accuracy", "val_f1", "val_mse", "val_mae", "val_r2"]) {
        if let Some(x) = v.metric(name) {
            cells.push((column, x.to_string()));
        }
    }
    if let Some(p) = v.metric("perplexity") {
        cells.push(("val_perplexity", p.to_string()));
    }
    cells
}

/// The run as CSV text.
pub(super) fn to_csv(run: &TrainRun) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS)?;
    for s in &run.steps {
        let mut cells = vec![("kind", "step".to_string()), ("step", s.step.to_string()), ("loss", s.loss.to_string()), ("learning_rate", s.lr.to_string())];
        if let Some(n) = s.grad_norm {
            cells.push(("grad_norm", n.to_string()));
        }
        w.write_record(row(&cells))?;
    }
    for e in &run.evaluations {
        let mut cells = vec![("kind", "eval".to_string()), ("step", e.step.to_string()), ("epoch", e.epoch.to_string())];
        cells.extend(eval_cells(&e.result));
        w.write_record(row(&cells))?;
    }
    let steps_per_epoch = if run.epochs.is_empty() { 0 } else { run.steps.len() / run.epochs.len() };
    for e in &run.epochs {
        let mut cells = vec![
            ("kind", "epoch".to_string()),
            ("step", (e.epoch * steps_per_epoch).min(run.steps.len()).to_string()),
            ("epoch", e.epoch.to_string()),
            ("train_loss", e.train_loss.to_string()),
            ("seconds", e.elapsed.to_string()),
        ];
        if let Some(v) = &e.val {
            cells.extend(eval_cells(v));
        }
        w.write_record(row(&cells))?;
    }
    w.write_record(row(&[
        ("kind", "run".to_string()),
        ("step", run.steps.len().to_string()),
        ("epoch", run.epochs.len().to_string()),
        ("seconds", run.seconds.to_string()),
        ("trainable_params", run.trainable_params.to_string()),
        ("total_params", run.total_params.to_string()),
        ("train_seconds", run.train_seconds.to_string()),
        ("samples_per_sec", run.samples_per_sec.to_string()),
        ("interrupted", run.interrupted.to_string()),
        ("device", run.device.clone()),
    ]))?;
    Ok(w.into_inner().map_err(|e| anyhow!("cannot write the CSV: {e}"))?)
}

/// Reads what `to_csv` wrote (the columns may come in any order, as a
/// spreadsheet may save them).
pub(super) fn read_csv(path: &Path) -> Result<TrainRun> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("cannot read the run {}", path.display()))?;
    let header = reader.headers().with_context(|| format!("{}: no header line", path.display()))?.clone();
    let at = |name: &str| header.iter().position(|h| h == name);
    for needed in ["kind", "step", "epoch"] {
        if at(needed).is_none() {
            bail!("{} has no '{needed}' column, so it is not a run written by run.save(\"....csv\"); its columns: {}", path.display(), header.iter().collect::<Vec<_>>().join(", "));
        }
    }
    let mut run = TrainRun::default();
    let mut saw_run = false;
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.with_context(|| format!("{}:{line}: not a CSV row", path.display()))?;
        let text = |name: &str| at(name).and_then(|j| record.get(j)).map(str::trim).filter(|s| !s.is_empty());
        let number = |name: &str| -> Result<Option<f64>> {
            text(name).map(|s| s.parse::<f64>().map_err(|_| anyhow!("{}:{line}: '{name}' is {s:?}, not a number", path.display()))).transpose()
        };
        let count = |name: &str| -> Result<usize> { Ok(number(name)?.unwrap_or(0.0) as usize) };
        let eval = || -> Result<Option<EvalResult>> {
            let Some(loss) = number("val_loss")? else { return Ok(None) };
            let task = match text("task") {
                Some(t) => Task::parse(t)?,
                None => Task::default(),
            };
            Ok(Some(EvalResult { loss, task, accuracy: number("val_accuracy")?, f1: number("val_f1")?, mse: number("val_mse")?, mae: number("val_mae")?, r2: number("val_r2")?, rows: count("val_rows")? }))
        };
        match text("kind") {
            Some("step") => run.steps.push(StepRecord { step: count("step")?, loss: number("loss")?.unwrap_or(f64::NAN), lr: number("learning_rate")?.unwrap_or(0.0), grad_norm: number("grad_norm")? }),
            Some("eval") => {
                if let Some(result) = eval()? {
                    run.evaluations.push(StepEval { step: count("step")?, epoch: count("epoch")?, result });
                }
            }
            Some("epoch") => run.epochs.push(EpochRecord { epoch: count("epoch")?, train_loss: number("train_loss")?.unwrap_or(f64::NAN), val: eval()?, elapsed: number("seconds")?.unwrap_or(0.0) }),
            Some("run") => {
                saw_run = true;
                run.seconds = number("seconds")?.unwrap_or(0.0);
                run.trainable_params = number("trainable_params")?.unwrap_or(0.0) as i64;
                run.total_params = number("total_params")?.unwrap_or(0.0) as i64;
                run.train_seconds = number("train_seconds")?.unwrap_or(0.0);
                run.samples_per_sec = number("samples_per_sec")?.unwrap_or(0.0);
                run.interrupted = text("interrupted") == Some("true");
                run.device = text("device").unwrap_or_default().to_string();
            }
            other => bail!("{}:{line}: unknown kind {:?}; a run's rows are step, eval, epoch and run", path.display(), other.unwrap_or("")),
        }
    }
    if !saw_run {
        bail!("{} has no 'run' row (its totals); was it cut short? run.save(\"....csv\") writes it last", path.display());
    }
    Ok(run)
}
