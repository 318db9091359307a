//! A run as TensorBoard event files, written while it trains, and read
//! back for `load_run`.
//!
//! An event file is a sequence of records (a little-endian u64 length, its
//! masked CRC-32C, the bytes, their masked CRC-32C), each an `Event`
//! protobuf: first the file version, then summaries of scalars. The run's
//! settings and its end go in the HParams plugin's session records, so that
//! TensorBoard's HParams table lists runs side by side with their final
//! metrics. The messages below mirror the field numbers of TensorBoard's
//! `event.proto`, `summary.proto`, `tensor.proto` and the HParams plugin's
//! `plugin_data.proto`.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use prost::Message;

use super::events::{TrainEvent, TrainObserver};
use super::history::{EpochRecord, EvalResult, StepEval, StepRecord, TrainRun};

#[derive(Clone, PartialEq, prost::Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(oneof = "What", tags = "3, 5")]
    what: Option<What>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
}

#[derive(Clone, PartialEq, prost::Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(message, optional, tag = "9")]
    metadata: Option<SummaryMetadata>,
    #[prost(oneof = "ValueKind", tags = "2, 8")]
    value: Option<ValueKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum ValueKind {
    #[prost(float, tag = "2")]
    Simple(f32),
    #[prost(message, tag = "8")]
    Tensor(TensorProto),
}

#[derive(Clone, PartialEq, prost::Message)]
struct SummaryMetadata {
    #[prost(message, optional, tag = "1")]
    plugin_data: Option<PluginData>,
    /// `DATA_CLASS_TENSOR` (2) for the HParams records.
    #[prost(int32, tag = "4")]
    data_class: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PluginData {
    #[prost(string, tag = "1")]
    plugin_name: String,
    #[prost(bytes = "vec", tag = "2")]
    content: Vec<u8>,
}

/// Only the empty float tensor the HParams records carry.
#[derive(Clone, PartialEq, prost::Message)]
struct TensorProto {
    #[prost(int32, tag = "1")]
    dtype: i32,
    #[prost(message, optional, tag = "2")]
    tensor_shape: Option<TensorShape>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TensorShape {
    #[prost(message, repeated, tag = "2")]
    dim: Vec<Dim>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Dim {
    #[prost(int64, tag = "1")]
    size: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HParamsPluginData {
    #[prost(int32, tag = "1")]
    version: i32,
    #[prost(oneof = "SessionInfo", tags = "3, 4")]
    data: Option<SessionInfo>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum SessionInfo {
    #[prost(message, tag = "3")]
    Start(SessionStartInfo),
    #[prost(message, tag = "4")]
    End(SessionEndInfo),
}

#[derive(Clone, PartialEq, prost::Message)]
struct SessionStartInfo {
    #[prost(map = "string, message", tag = "1")]
    hparams: HashMap<String, prost_types::Value>,
    #[prost(double, tag = "5")]
    start_time_secs: f64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SessionEndInfo {
    /// `STATUS_SUCCESS` (1) when the run finished.
    #[prost(int32, tag = "1")]
    status: i32,
    #[prost(double, tag = "2")]
    end_time_secs: f64,
}

const FILE_VERSION: &str = "brain.Event:2";
const SESSION_START: &str = "_hparams_/session_start_info";
const SESSION_END: &str = "_hparams_/session_end_info";
const STATUS_SUCCESS: i32 = 1;
const DT_FLOAT: i32 = 1;
const DATA_CLASS_TENSOR: i32 = 2;

/// The run's totals, as scalars at its last step (what `plot_costs` and
/// `table` read back).
const TOTALS: &[&str] = &["run/trainable_params", "run/total_params", "run/train_seconds", "run/seconds", "run/samples_per_second", "run/interrupted"];

/// A setting of the run, for TensorBoard's HParams table.
#[derive(Debug, Clone, PartialEq)]
pub enum HParam {
    /// A number (a rate, a count).
    Number(f64),
    /// A name (the optimizer, the schedule).
    Text(String),
    /// On or off.
    Flag(bool),
}

impl HParam {
    fn to_value(&self) -> prost_types::Value {
        use prost_types::value::Kind;
        prost_types::Value {
            kind: Some(match self {
                Self::Number(x) => Kind::NumberValue(*x),
                Self::Text(s) => Kind::StringValue(s.clone()),
                Self::Flag(b) => Kind::BoolValue(*b),
            }),
        }
    }
}

fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    ((crc >> 15) | (crc << 17)).wrapping_add(0xa282_ead8)
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Writes one training run's event file as the run goes, flushing at each
/// evaluation and at the end so that TensorBoard shows it while it trains.
/// Event files only grow, and readers stop at a torn last record, so an
/// interrupted run keeps everything written before.
pub struct TensorBoardWriter {
    out: BufWriter<File>,
    path: PathBuf,
    hparams: BTreeMap<String, HParam>,
    step: usize,
    steps_per_epoch: usize,
    /// The first write error; later writes are skipped and the run goes on.
    failed: Option<String>,
}

impl TensorBoardWriter {
    /// Creates `dir` and an event file in it, named as TensorBoard's own
    /// writer names them, for a run with these settings.
    pub fn create(dir: &Path, hparams: BTreeMap<String, HParam>) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create the TensorBoard folder {}", dir.display()))?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "localhost".into());
        let path = dir.join(format!("events.out.tfevents.{:010}.{host}.{}.0", now() as u64, std::process::id()));
        let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut writer = Self { out: BufWriter::new(file), path, hparams, step: 0, steps_per_epoch: 0, failed: None };
        writer.record(&Event { wall_time: now(), step: 0, what: Some(What::FileVersion(FILE_VERSION.into())) });
        Ok(writer)
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn record(&mut self, event: &Event) {
        if self.failed.is_some() {
            return;
        }
        let data = event.encode_to_vec();
        let header = (data.len() as u64).to_le_bytes();
        let result = (|| -> std::io::Result<()> {
            self.out.write_all(&header)?;
            self.out.write_all(&masked_crc(&header).to_le_bytes())?;
            self.out.write_all(&data)?;
            self.out.write_all(&masked_crc(&data).to_le_bytes())
        })();
        if let Err(e) = result {
            self.failed = Some(format!("cannot write {}: {e}", self.path.display()));
        }
    }

    fn flush(&mut self) {
        if self.failed.is_none() {
            if let Err(e) = self.out.flush() {
                self.failed = Some(format!("cannot write {}: {e}", self.path.display()));
            }
        }
    }

    fn scalars(&mut self, step: usize, values: &[(String, f64)]) {
        let value = values.iter().filter(|(_, v)| v.is_finite()).map(|(tag, v)| SummaryValue { tag: tag.clone(), metadata: None, value: Some(ValueKind::Simple(*v as f32)) }).collect();
        self.record(&Event { wall_time: now(), step: step as i64, what: Some(What::Summary(Summary { value })) });
    }

    fn session(&mut self, tag: &str, info: SessionInfo) {
        let content = HParamsPluginData { version: 0, data: Some(info) }.encode_to_vec();
        let metadata = SummaryMetadata { plugin_data: Some(PluginData { plugin_name: "hparams".into(), content }), data_class: DATA_CLASS_TENSOR };
        let empty = TensorProto { dtype: DT_FLOAT, tensor_shape: Some(TensorShape { dim: vec![Dim { size: 0 }] }) };
        let value = vec![SummaryValue { tag: tag.into(), metadata: Some(metadata), value: Some(ValueKind::Tensor(empty)) }];
        self.record(&Event { wall_time: now(), step: self.step as i64, what: Some(What::Summary(Summary { value })) });
    }

    fn eval_scalars(result: &EvalResult) -> Vec<(String, f64)> {
        result.metrics().into_iter().chain(result.metric("perplexity").map(|p| ("perplexity", p))).map(|(name, v)| (format!("eval/{name}"), v)).collect()
    }

    /// The first write error, if any write failed (training goes on).
    pub fn error(&self) -> Option<&str> {
        self.failed.as_deref()
    }
}

impl TrainObserver for TensorBoardWriter {
    fn on_event(&mut self, event: &TrainEvent) {
        match event {
            TrainEvent::Start { steps_per_epoch, trainable_params, total_params, .. } => {
                self.steps_per_epoch = *steps_per_epoch;
                let mut hparams: HashMap<String, prost_types::Value> = self.hparams.iter().map(|(k, v)| (k.clone(), v.to_value())).collect();
                hparams.insert("trainable_params".into(), HParam::Number(*trainable_params as f64).to_value());
                hparams.insert("total_params".into(), HParam::Number(*total_params as f64).to_value());
                self.session(SESSION_START, SessionInfo::Start(SessionStartInfo { hparams, start_time_secs: now() }));
                self.flush();
            }
            TrainEvent::Step { epoch, step_in_epoch, record, .. } => {
                self.step = record.step;
                // The epoch as a fraction, as Hugging Face's Trainer logs it.
                let epoch = (*epoch - 1) as f64 + *step_in_epoch as f64 / self.steps_per_epoch.max(1) as f64;
                let mut values = vec![("train/loss".to_string(), record.loss), ("train/learning_rate".to_string(), record.lr), ("train/epoch".to_string(), epoch)];
                if let Some(norm) = record.grad_norm {
                    values.push(("train/grad_norm".into(), norm));
                }
                self.scalars(record.step, &values);
            }
            TrainEvent::Evaluated(e) => {
                self.scalars(e.step, &Self::eval_scalars(&e.result));
                self.flush();
            }
            TrainEvent::EpochEnd(e) => {
                let mut values = vec![("epoch/train_loss".to_string(), e.train_loss), ("epoch/number".to_string(), e.epoch as f64), ("epoch/seconds".to_string(), e.elapsed)];
                if let Some(v) = &e.val {
                    values.extend(Self::eval_scalars(v));
                    values.push(("epoch/val_rows".into(), v.rows as f64));
                }
                self.scalars(self.step, &values);
                self.flush();
            }
            TrainEvent::Done(run) => {
                let totals = [run.trainable_params as f64, run.total_params as f64, run.train_seconds, run.seconds, run.samples_per_sec, f64::from(u8::from(run.interrupted))];
                let values: Vec<(String, f64)> = TOTALS.iter().map(|t| t.to_string()).zip(totals).collect();
                self.scalars(self.step, &values);
                if !run.interrupted {
                    self.session(SESSION_END, SessionInfo::End(SessionEndInfo { status: STATUS_SUCCESS, end_time_secs: now() }));
                }
                self.flush();
            }
            _ => {}
        }
    }
}

/// The scalars of every event file in `dir` (in name order): tag to
/// (step, value) in the order written.
fn read_scalars(dir: &Path) -> Result<BTreeMap<String, Vec<(usize, f64)>>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the TensorBoard folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains("tfevents")))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{} has no TensorBoard event files (events.out.tfevents.*)", dir.display());
    }
    let mut scalars: BTreeMap<String, Vec<(usize, f64)>> = BTreeMap::new();
    for file in files {
        let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        let mut at = 0;
        // A torn last record (a run still writing, or killed) ends the file.
        while at + 12 <= bytes.len() {
            let len = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes")) as usize;
            if masked_crc(&bytes[at..at + 8]) != u32::from_le_bytes(bytes[at + 8..at + 12].try_into().expect("4 bytes")) {
                bail!("{}: a record at byte {at} fails its length checksum: the file is damaged", file.display());
            }
            let Some(end) = (at + 12).checked_add(len).filter(|end| end + 4 <= bytes.len()) else { break };
            let data = &bytes[at + 12..end];
            if masked_crc(data) != u32::from_le_bytes(bytes[end..end + 4].try_into().expect("4 bytes")) {
                bail!("{}: a record at byte {at} fails its checksum: the file is damaged", file.display());
            }
            let event = Event::decode(data).with_context(|| format!("{}: a record at byte {at} is not a TensorBoard event", file.display()))?;
            if let Some(What::Summary(summary)) = event.what {
                for v in summary.value {
                    if let Some(ValueKind::Simple(x)) = v.value {
                        scalars.entry(v.tag).or_default().push((event.step as usize, x as f64));
                    }
                }
            }
            at = end + 4;
        }
    }
    Ok(scalars)
}

/// Whether `path` is a folder of TensorBoard event files.
pub fn is_log_dir(path: &Path) -> bool {
    path.is_dir() && std::fs::read_dir(path).is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().contains("tfevents"))))
}

/// A run from what `TensorBoardWriter` wrote into `dir`: the steps, the
/// evaluations, the epochs and the totals (values as TensorBoard keeps
/// them, in 32-bit floats).
pub fn read_run(dir: &Path) -> Result<TrainRun> {
    let scalars = read_scalars(dir)?;
    // The task, from the metrics it logged.
    let task = match () {
        _ if scalars.contains_key("eval/perplexity") => crate::task::Task::NextToken,
        _ if scalars.contains_key("eval/mse") => crate::task::Task::Regression,
        _ => crate::task::Task::Classify,
    };
    let series = |tag: &str| scalars.get(tag).cloned().unwrap_or_default();
    let at_step = |tag: &str, step: usize| series(tag).iter().rev().find(|(s, _)| *s == step).map(|(_, v)| *v);
    let mut run = TrainRun::default();
    for (step, loss) in series("train/loss") {
        run.steps.push(StepRecord { step, loss, lr: at_step("train/learning_rate", step).unwrap_or(0.0), grad_norm: at_step("train/grad_norm", step) });
    }
    if run.steps.is_empty() && series("epoch/number").is_empty() {
        bail!("{} has TensorBoard event files but no training scalars (train/loss): were they written by fit(..., #{{ log: \"tensorboard\" }})?", dir.display());
    }
    let eval_at = |step: usize| -> Option<EvalResult> {
        let loss = at_step("eval/loss", step)?;
        let metric = |name: &str| at_step(&format!("eval/{name}"), step);
        Some(EvalResult { loss, task, accuracy: metric("accuracy"), f1: metric("f1"), mse: metric("mse"), mae: metric("mae"), r2: metric("r2"), rows: at_step("epoch/val_rows", step).unwrap_or(0.0) as usize })
    };
    let epoch_steps: Vec<usize> = series("epoch/number").iter().map(|(s, _)| *s).collect();
    for (step, epoch) in series("epoch/number") {
        run.epochs.push(EpochRecord { epoch: epoch as usize, train_loss: at_step("epoch/train_loss", step).unwrap_or(f64::NAN), val: eval_at(step), elapsed: at_step("epoch/seconds", step).unwrap_or(0.0) });
    }
    for (step, _) in series("eval/loss") {
        if !epoch_steps.contains(&step) {
            let epoch = at_step("train/epoch", step).unwrap_or(0.0) as usize;
            run.evaluations.extend(eval_at(step).map(|result| StepEval { step, epoch, result }));
        }
    }
    let total = |tag: &str| series(tag).last().map(|(_, v)| *v);
    run.trainable_params = total("run/trainable_params").unwrap_or(0.0) as i64;
    run.total_params = total("run/total_params").unwrap_or(0.0) as i64;
    run.train_seconds = total("run/train_seconds").unwrap_or(0.0);
    run.seconds = total("run/seconds").unwrap_or(0.0);
    run.samples_per_sec = total("run/samples_per_second").unwrap_or(0.0);
    // A run without its totals stopped before it finished.
    run.interrupted = total("run/interrupted") != Some(0.0);
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_masked_checksum_is_tensorboards() {
        // TensorBoard's own test value (data/server/masked_crc.rs).
        assert_eq!(masked_crc(b"\x1a\x11CRC test, one two"), 0x5794_d08a);
    }

    #[test]
    fn the_hparams_record_carries_the_empty_float_tensor() {
        let empty = TensorProto { dtype: DT_FLOAT, tensor_shape: Some(TensorShape { dim: vec![Dim { size: 0 }] }) };
        assert_eq!(empty.encode_to_vec(), [0x08, 0x01, 0x12, 0x02, 0x12, 0x00]);
    }
}
