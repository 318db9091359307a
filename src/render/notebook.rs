//! Renders training events in a notebook: one live display per run (a
//! progress line, the epochs so far and the loss and accuracy curves),
//! updated in place through the kernel's `Frontend`.

use std::time::{Duration, Instant};

use serde_json::json;

use super::html_escape;
use crate::kernel::{Frontend, MimeBundle};
use crate::train::{EpochRecord, TrainEvent, TrainObserver};

/// One live display per training run: a progress line and the epochs so
/// far, updated in place a few times a second.
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
    history: Vec<EpochRecord>,
    steps: Vec<crate::train::StepRecord>,
    interrupted: bool,
    chart_svg: String,
    last_chart: Option<Instant>,
    /// Lines about the run's set-up: layer rates, unfreezing.
    notes: Vec<String>,
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
            history: Vec::new(),
            steps: Vec::new(),
            interrupted: false,
            chart_svg: String::new(),
            last_chart: None,
            notes: Vec::new(),
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
        if let Ok(svg) = crate::plot::training_curves(&run).svg() {
            self.chart_svg = svg;
        }
    }

    fn progress_line(&self) -> String {
        if self.step == 0 {
            return format!("starting: {}", self.status);
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = self.step as f64 / elapsed.max(1e-9);
        let eta = if self.step > 0 { (self.total_steps.saturating_sub(self.step)) as f64 / rate } else { f64::NAN };
        let done = if self.total_steps > 0 { self.step as f64 / self.total_steps as f64 } else { 0.0 };
        let filled = (done * 24.0).round() as usize;
        format!(
            "[{}{}] step {}/{}  loss {:.4}  lr {:.2e}  {:.2} steps/s  eta {}  {}",
            "#".repeat(filled),
            ".".repeat(24 - filled.min(24)),
            self.step,
            self.total_steps,
            self.loss,
            self.lr,
            rate,
            if eta.is_finite() { format!("{eta:.0}s") } else { "-".into() },
            self.status
        )
    }

    fn bundle(&self) -> MimeBundle {
        let mut plain = self.progress_line();
        for note in &self.notes {
            plain.push_str(&format!("\n{note}"));
        }
        let notes_html: String = self.notes.iter().map(|n| format!("<div><code>{}</code></div>", html_escape(n))).collect();
        for line in TrainEvent::sample_lines(&self.latest_samples, 100) {
            plain.push_str(&format!("\nsample {line}"));
        }
        let mut rows = String::new();
        let metrics = self.history.iter().find_map(|e| e.val).map_or(vec!["accuracy"], |v| v.task.table_metrics());
        for e in &self.history {
            let vl = e.val.map(|v| format!("{:.4}", v.loss)).unwrap_or_default();
            let values: Vec<String> = metrics.iter().map(|m| e.val.and_then(|v| v.metric(m)).map(|x| format!("{x:.4}")).unwrap_or_default()).collect();
            let named: String = metrics.iter().zip(&values).map(|(m, v)| format!("  val_{m} {v}")).collect();
            plain.push_str(&format!("\nepoch {}/{}: train_loss {:.4}  val_loss {vl}{named}  ({:.0}s)", e.epoch, self.epochs, e.train_loss, e.elapsed));
            let cells: String = values.iter().map(|v| format!("<td>{v}</td>")).collect();
            rows.push_str(&format!("<tr><td>{}</td><td>{:.4}</td><td>{vl}</td>{cells}<td>{:.0}s</td></tr>", e.epoch, e.train_loss, e.elapsed));
        }
        let heads: String = metrics.iter().map(|m| format!("<th>val_{m}</th>")).collect();
        let pct = if self.total_steps > 0 { 100.0 * self.step as f64 / self.total_steps as f64 } else { 0.0 };
        let html = format!(
            "<div><progress value=\"{pct:.1}\" max=\"100\" style=\"width:40%\"></progress> <code>{}</code>{notes_html}\
             <table><thead><tr><th>epoch</th><th>train_loss</th><th>val_loss</th>{heads}<th>time</th></tr></thead><tbody>{rows}</tbody></table>{}{}</div>",
            html_escape(&self.progress_line()),
            self.samples_html(),
            self.chart_svg
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
        match event {
            TrainEvent::Start { epochs, steps_per_epoch, total_steps, trainable_params, total_params, device, lr_groups } => {
                self.notes.extend(TrainEvent::lr_groups_summary(lr_groups));
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
            TrainEvent::Step { epoch, record, .. } => {
                self.steps.push(*record);
                self.step = record.step;
                self.loss = record.loss;
                self.lr = record.lr;
                self.status = format!("epoch {epoch}/{}", self.epochs);
                self.refresh(false);
            }
            TrainEvent::Evaluating { epoch } => {
                self.status = format!("evaluating epoch {epoch}");
                self.refresh(true);
            }
            TrainEvent::Unfrozen { epoch, groups, trainable_params } => {
                self.notes.push(TrainEvent::unfrozen_summary(*epoch, groups, *trainable_params));
                self.refresh(true);
            }
            TrainEvent::Warning(_) | TrainEvent::Checkpoint { .. } | TrainEvent::Resumed { .. } | TrainEvent::Evaluated(_) => {
                self.notes.extend(event.note());
                self.refresh(true);
            }
            TrainEvent::EpochEnd(e) => {
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
