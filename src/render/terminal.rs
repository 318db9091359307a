//! Renders training events on a terminal: a progress bar per epoch and one
//! summary line per epoch, all on stderr (stdout is the script's own output).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

use crate::numbers::{group_digits, percent};
use crate::train::{TrainEvent, TrainObserver};

/// A terminal renderer. Without a terminal (CI logs, pipes) it prints a
/// plain line every `log_every` steps instead of redrawing a bar.
pub struct TerminalProgress {
    bar: Option<ProgressBar>,
    epochs: usize,
    steps_per_epoch: usize,
    interactive: bool,
    log_every: usize,
    recent_loss: f64,
}

impl TerminalProgress {
    /// A renderer for stderr.
    pub fn new() -> Self {
        Self { bar: None, epochs: 0, steps_per_epoch: 0, interactive: std::io::stderr().is_terminal(), log_every: 50, recent_loss: f64::NAN }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }
}

impl TrainObserver for TerminalProgress {
    fn on_event(&mut self, event: &TrainEvent) {
        match event {
            TrainEvent::Start { epochs, steps_per_epoch, total_steps, trainable_params, total_params, device, lr_groups } => {
                self.epochs = *epochs;
                self.steps_per_epoch = *steps_per_epoch;
                self.log_every = (steps_per_epoch / 10).clamp(10, 100);
                eprintln!(
                    "training {} of {} parameters ({}) on {device}: {epochs} epochs x {steps_per_epoch} steps ({total_steps} steps)",
                    group_digits(*trainable_params),
                    group_digits(*total_params),
                    percent(*trainable_params, *total_params)
                );
                if let Some(line) = TrainEvent::lr_groups_summary(lr_groups) {
                    eprintln!("{line}");
                }
            }
            TrainEvent::Unfrozen { epoch, groups, trainable_params } => {
                self.line(&TrainEvent::unfrozen_summary(*epoch, groups, *trainable_params));
            }
            TrainEvent::Warning(_) | TrainEvent::Checkpoint { .. } | TrainEvent::Resumed { .. } | TrainEvent::Evaluated(_) => {
                if let Some(note) = event.note() {
                    self.line(&note);
                }
            }
            TrainEvent::Step { epoch, step_in_epoch, record } => {
                self.recent_loss = if self.recent_loss.is_nan() { record.loss } else { 0.9 * self.recent_loss + 0.1 * record.loss };
                if self.bar.is_none() && self.interactive {
                    let bar = ProgressBar::with_draw_target(Some(self.steps_per_epoch as u64), ProgressDrawTarget::stderr());
                    bar.set_style(
                        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} {per_sec} eta {eta}")
                            .expect("valid template")
                            .progress_chars("=> "),
                    );
                    bar.set_prefix(format!("{epoch}/{}", self.epochs));
                    self.bar = Some(bar);
                }
                if let Some(bar) = &self.bar {
                    bar.set_position(*step_in_epoch as u64);
                    bar.set_message(format!("loss {:.4} lr {:.2e}", self.recent_loss, record.lr));
                } else if step_in_epoch % self.log_every == 0 || *step_in_epoch == self.steps_per_epoch {
                    eprintln!("epoch {epoch}/{} step {step_in_epoch}/{}: loss {:.4}, lr {:.2e}", self.epochs, self.steps_per_epoch, self.recent_loss, record.lr);
                }
            }
            TrainEvent::Evaluating { epoch } => {
                if let Some(bar) = &self.bar {
                    bar.set_message(format!("evaluating epoch {epoch}"));
                }
            }
            TrainEvent::EpochEnd(e) => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                let val = e.val.map(|v| format!(", {}", v.summary("val_"))).unwrap_or_default();
                self.line(&format!("epoch {}/{}: train_loss {:.4}{val} ({:.0}s)", e.epoch, self.epochs, e.train_loss, e.elapsed));
            }
            TrainEvent::Samples(samples) => {
                for line in TrainEvent::sample_lines(samples, 100) {
                    self.line(&format!("sample {line}"));
                }
            }
            TrainEvent::EarlyStopping { stopped_at, best_epoch, restored } => {
                self.line(&TrainEvent::early_stopping_summary(*stopped_at, *best_epoch, *restored));
            }
            TrainEvent::Interrupted { steps } => {
                if let Some(bar) = self.bar.take() {
                    bar.abandon();
                }
                eprintln!("interrupted after {steps} steps; the model keeps the weights learned so far");
            }
            TrainEvent::Done(run) => {
                eprintln!("done in {:.0}s ({:.1} samples/s)", run.seconds, run.samples_per_sec);
            }
        }
    }
}
