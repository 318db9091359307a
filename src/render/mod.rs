//! Renderers of training events: a terminal's progress bars and lines
//! (`terminal`), and a notebook's live display (`notebook`). They sit above
//! the core, which only emits the events.

mod notebook;
mod terminal;

pub use notebook::LiveTraining;
pub use terminal::TerminalProgress;

/// A learning rate for reading: `2.00e-5`, and `0` (not `0.00e0`) for the
/// first warmup step, which, as in Hugging Face's schedules, uses none.
pub fn format_lr(lr: f64) -> String {
    if lr == 0.0 { "0".into() } else { format!("{lr:.2e}") }
}

/// Escapes text for HTML output.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
