//! Renders training events on a terminal: a progress bar per epoch and one
//! summary line per epoch, all on stderr (stdout is the script's own output).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

use super::format_lr;
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
            TrainEvent::Start { epochs, steps_per_epoch, .. } => {
                self.epochs = *epochs;
                self.steps_per_epoch = *steps_per_epoch;
                self.log_every = (steps_per_epoch / 10).clamp(10, 100);
            }
            TrainEvent::Step { epoch, step_in_epoch, record, .. } => {
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
                    bar.set_message(format!("loss {:.4} lr {}", self.recent_loss, format_lr(record.lr)));
                } else if step_in_epoch % self.log_every == 0 || *step_in_epoch == self.steps_per_epoch {
                    eprintln!("epoch {epoch}/{} step {step_in_epoch}/{}: loss {:.4}, lr {}", self.epochs, self.steps_per_epoch, self.recent_loss, format_lr(record.lr));
                }
            }
            TrainEvent::Evaluating { epoch } => {
                if let Some(bar) = &self.bar {
                    bar.set_message(format!("evaluating epoch {epoch}"));
                }
            }
            TrainEvent::Samples(samples) => {
                for line in TrainEvent::sample_lines(samples, 100) {
                    self.line(&format!("sample {line}"));
                }
            }
            TrainEvent::EpochEnd(_) | TrainEvent::Interrupted { .. } => {
                if let Some(bar) = self.bar.take() {
                    if matches!(event, TrainEvent::Interrupted { .. }) { bar.abandon() } else { bar.finish_and_clear() }
                }
            }
            _ => {}
        }
        for line in event.record_lines(self.epochs) {
            self.line(&line);
        }
    }
}

