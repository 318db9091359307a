//! Renders training events in a notebook: one live display per run (a
//! progress line, the sample answers and the loss and accuracy curves),
//! updated in place through the kernel's `Frontend`, and the run's record
//! (set-up, one line per epoch, the outcome) as text output as it happens,
//! which every client shows and a saved notebook keeps.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{format_lr, html_escape};
use crate::kernel::{Frontend, MimeBundle};
use crate::train::{EpochRecord, TrainEvent, TrainObserver};

/// One live display per training run: a progress line, the sample answers
/// and the curves, updated in place a few times a second; the run's record
/// goes to the cell's text output.
pub struct LiveTraining {
    frontend: Frontend,
    display_id: String,
    shown: bool,
    last_update: Option<Instant>,
    epochs: usize,
    steps_per_epoch: usize,
    total_steps: usize,
    started: Instant,
    status: String,
    loss: f64,
    lr: f64,
    step: usize,
    /// Whether the run evaluates (the chart waits for it until then).
    validation: bool,
    /// Rows trained on so far, for the rate in samples per second.
    samples: usize,
    /// Validation batches scored and in all, while evaluating.
    eval_progress: Option<(usize, usize, Instant)>,
    history: Vec<EpochRecord>,
    steps: Vec<crate::train::StepRecord>,
    interrupted: bool,
    /// The curves as an HTML image.
    chart_html: String,
    last_chart: Option<Instant>,
    /// The first answers to the sample prompts, and the latest.
    first_samples: Vec<crate::train::Sample>,
    latest_samples: Vec<crate::train::Sample>,
}

const UPDATE_EVERY: Duration = Duration::from_millis(250);
/// The chart is redrawn less often than the progress line (a redraw takes
/// about 1 ms for 10,000 steps: `cargo bench --bench charts`).
const CHART_EVERY: Duration = Duration::from_millis(500);

impl LiveTraining {
    /// A display that appears at the run's first event.
    pub fn new(frontend: Frontend) -> Self {
        Self {
            frontend,
            display_id: uuid::Uuid::new_v4().to_string(),
            shown: false,
            last_update: None,
            epochs: 0,
            steps_per_epoch: 0,
            total_steps: 0,
            started: Instant::now(),
            status: String::new(),
            loss: f64::NAN,
            lr: 0.0,
            step: 0,
            validation: false,
            samples: 0,
            eval_progress: None,
            history: Vec::new(),
            steps: Vec::new(),
            interrupted: false,
            chart_html: String::new(),
            last_chart: None,
            first_samples: Vec::new(),
            latest_samples: Vec::new(),
        }
    }

    /// The sample prompts with their first and latest answers, side by side.
    fn samples_html(&self) -> String {
        if self.latest_samples.is_empty() {
            return String::new();
        }
        let first_step = self.first_samples.first().map_or(0, |s| s.step);
        let latest_step = self.latest_samples.first().map_or(0, |s| s.step);
        let mut rows = String::new();
        for (i, latest) in self.latest_samples.iter().enumerate() {
            let first = self.first_samples.get(i).filter(|_| first_step != latest_step).map(|s| format!("<td style=\"text-align:left;white-space:pre-wrap\">{}</td>", html_escape(&s.text))).unwrap_or_default();
            rows.push_str(&format!(
                "<tr><td style=\"text-align:left;white-space:pre-wrap\">{}</td>{first}<td style=\"text-align:left;white-space:pre-wrap\">{}</td></tr>",
                html_escape(&latest.prompt),
                html_escape(&latest.text)
            ));
        }
        let first_head = if first_step != latest_step { format!("<th>step {first_step}</th>") } else { String::new() };
        format!("<table><thead><tr><th>prompt</th>{first_head}<th>step {latest_step}</th></tr></thead><tbody>{rows}</tbody></table>")
    }

    fn redraw_chart(&mut self, force: bool) {
        if self.steps.is_empty() || (!force && self.last_chart.is_some_and(|t| t.elapsed() < CHART_EVERY)) {
            return;
        }
        self.last_chart = Some(Instant::now());
        let run = crate::train::TrainRun { steps: self.steps.clone(), epochs: self.history.clone(), interrupted: self.interrupted, ..Default::default() };
        let opts = crate::plot::CurveOptions { awaiting_validation: self.validation, ..Default::default() };
        if let Ok(svg) = crate::plot::training_curves_with(&run, &opts).and_then(|c| c.svg()) {
            // An image, not inline SVG: JupyterLab strips inline SVG from the
            // HTML of a notebook it does not trust (one saved and reopened).
            use base64::Engine as _;
            let data = base64::engine::general_purpose::STANDARD.encode(svg);
            self.chart_html = format!("<img alt=\"training curves\" style=\"max-width:100%;height:auto\" src=\"data:image/svg+xml;base64,{data}\">");
        }
    }

    /// The progress as separate fields (a client may wrap between them,
    /// never inside one).
    fn progress_fields(&self) -> Vec<String> {
        if let Some((batch, batches, started)) = self.eval_progress {
            let eta = if batch > 0 { started.elapsed().as_secs_f64() / batch as f64 * (batches - batch) as f64 } else { f64::NAN };
            return vec![format!("{}:", self.status), format!("batch {batch}/{batches}"), format!("eta {}", seconds(eta))];
        }
        if self.step == 0 {
            return vec![format!("starting: {}", self.status)];
        }
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        let rate = self.step as f64 / elapsed;
        let eta = self.total_steps.saturating_sub(self.step) as f64 / rate;
        vec![
            format!("step {}/{}", self.step, self.total_steps),
            format!("loss {:.4}", self.loss),
            format!("lr {}", format_lr(self.lr)),
            format!("{:.1} samples/s", self.samples as f64 / elapsed),
            format!("eta {}", seconds(eta)),
            self.status.clone(),
        ]
    }

    fn bundle(&self) -> MimeBundle {
        let fields = self.progress_fields();
        let done = if self.total_steps > 0 { self.step as f64 / self.total_steps as f64 } else { 0.0 };
        let filled = ((done * 24.0).round() as usize).min(24);
        let mut plain = format!("[{}{}] {}", "#".repeat(filled), ".".repeat(24 - filled), fields.join("  "));
        for line in TrainEvent::sample_lines(&self.latest_samples, 100) {
            plain.push_str(&format!("\nsample {line}"));
        }
        let spans: Vec<String> = fields.iter().map(|f| format!("<span style=\"white-space:nowrap\">{}</span>", html_escape(f))).collect();
        let html = format!(
            "<div><div><progress value=\"{:.1}\" max=\"100\" style=\"width:12em;vertical-align:middle\"></progress> <code>{}</code></div>{}{}</div>",
            100.0 * done,
            spans.join(" &nbsp;"),
            self.samples_html(),
            self.chart_html
        );
        let mut b = MimeBundle::new();
        b.insert("text/plain".into(), json!(plain));
        b.insert("text/html".into(), json!(html));
        b
    }

    fn refresh(&mut self, force: bool) {
        if !force && self.last_update.is_some_and(|t| t.elapsed() < UPDATE_EVERY) {
            return;
        }
        self.last_update = Some(Instant::now());
        self.redraw_chart(force);
        if self.shown {
            self.frontend.update_display(self.bundle(), &self.display_id);
        } else {
            self.frontend.display(self.bundle(), Some(&self.display_id));
            self.shown = true;
        }
    }
}

impl TrainObserver for LiveTraining {
    fn on_event(&mut self, event: &TrainEvent) {
        self.update(event);
        let epochs = match event {
            TrainEvent::Start { epochs, .. } => *epochs,
            _ => self.epochs,
        };
        for line in event.record_lines(epochs) {
            self.frontend.stream("stdout", &format!("{line}\n"));
        }
    }
}

impl LiveTraining {
    fn update(&mut self, event: &TrainEvent) {
        match event {
            TrainEvent::Start { epochs, steps_per_epoch, total_steps, trainable_params, total_params, device, validation, .. } => {
                self.validation = *validation;
                self.epochs = *epochs;
                self.steps_per_epoch = *steps_per_epoch;
                self.total_steps = *total_steps;
                self.started = Instant::now();
                self.status = format!(
                    "training {} of {} parameters on {device}",
                    crate::numbers::group_digits(*trainable_params),
                    crate::numbers::group_digits(*total_params)
                );
                self.refresh(true);
            }
            TrainEvent::Step { epoch, record, samples, .. } => {
                self.eval_progress = None;
                self.samples += samples;
                self.steps.push(*record);
                self.step = record.step;
                self.loss = record.loss;
                self.lr = record.lr;
                self.status = format!("epoch {epoch}/{}", self.epochs);
                self.refresh(false);
            }
            TrainEvent::Evaluating { epoch } => {
                self.status = format!("evaluating epoch {epoch}");
                self.eval_progress = Some((0, 0, Instant::now()));
                self.refresh(true);
            }
            TrainEvent::EvalProgress { batch, batches } => {
                let started = self.eval_progress.map_or_else(Instant::now, |p| p.2);
                self.eval_progress = Some((*batch, *batches, started));
                self.refresh(false);
            }
            TrainEvent::Unfrozen { .. } | TrainEvent::Warning(_) | TrainEvent::Checkpoint { .. } | TrainEvent::Resumed { .. } | TrainEvent::TensorBoard { .. } => {}
            TrainEvent::Evaluated(_) => {
                self.eval_progress = None;
                self.refresh(true);
            }
            TrainEvent::EpochEnd(e) => {
                self.eval_progress = None;
                self.history.push(e.clone());
                self.refresh(true);
            }
            TrainEvent::Samples(samples) => {
                if self.first_samples.is_empty() {
                    self.first_samples = samples.clone();
                }
                self.latest_samples = samples.clone();
                self.refresh(true);
            }
            TrainEvent::EarlyStopping { stopped_at, best_epoch, restored } => {
                self.status = TrainEvent::early_stopping_summary(*stopped_at, *best_epoch, *restored);
                self.refresh(true);
            }
            TrainEvent::Interrupted { steps } => {
                self.interrupted = true;
                self.eval_progress = None;
                self.status = format!("interrupted after {steps} steps; the model keeps its weights");
                self.refresh(true);
            }
            TrainEvent::Done(run) => {
                if !run.interrupted {
                    let early = run.best_epoch.map(|b| TrainEvent::early_stopping_summary(run.stopped_early_at, b, run.restored_best) + "; ").unwrap_or_default();
                    self.status = format!("{early}done in {:.0}s", run.seconds);
                }
                self.refresh(true);
            }
        }
    }
}

/// Seconds for an ETA, "-" when unknown.
fn seconds(s: f64) -> String {
    if s.is_finite() { format!("{s:.0}s") } else { "-".into() }
}
