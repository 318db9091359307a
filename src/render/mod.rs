//! Renderers of training events: a terminal's progress bars and lines
//! (`terminal`), and a notebook's live display (`notebook`). They sit above
//! the core, which only emits the events.

mod notebook;
mod terminal;

pub use notebook::LiveTraining;
pub use terminal::TerminalProgress;

/// Escapes text for HTML output.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
