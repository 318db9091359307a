//! The terminal as a script host, for `tunebook run` and `tunebook repl`.

use std::path::PathBuf;

use tunebook::script::Host;
use tunebook::train::TrainObserver;

/// The terminal as a script host: what the script prints goes to stdout,
/// and nothing else does (progress, notes and chart paths go to stderr), so
/// `tunebook run x.rhai > results.txt` keeps only the results. Charts are
/// PNG files under `out/plots/`, numbered past those already there. In a
/// distributed run only rank 0 prints and draws, as only it writes.
pub struct TerminalHost {
    script_stem: String,
    /// A chart shown but not yet written: written at the next output, or
    /// dropped when the script saves it itself.
    pending_chart: std::cell::RefCell<Option<tunebook::plot::Chart>>,
    speaks: bool,
}

impl TerminalHost {
    /// A host whose charts are named after `script_stem`.
    pub fn new(script_stem: &str) -> Self {
        Self { script_stem: script_stem.to_string(), pending_chart: Default::default(), speaks: tunebook::distributed::is_main_process() }
    }

    /// Writes the chart last shown, if the script did not save it itself,
    /// to the first free `out/plots/<script>-N.png`.
    pub fn write_pending_chart(&self) {
        let Some(chart) = self.pending_chart.borrow_mut().take() else { return };
        let path = (1..).map(|n| PathBuf::from("out/plots").join(format!("{}-{n}.png", self.script_stem))).find(|p| !p.exists()).expect("a free chart name");
        match chart.save(&path) {
            Ok(()) => eprintln!("chart saved to {}", path.display()),
            Err(e) => eprintln!("warning: could not write the chart {}: {e:#}", path.display()),
        }
    }
}

impl Drop for TerminalHost {
    fn drop(&mut self) {
        self.write_pending_chart();
    }
}

impl Host for TerminalHost {
    fn run_name(&self) -> String {
        self.script_stem.clone()
    }
    fn print(&self, text: &str) {
        self.write_pending_chart();
        if self.speaks {
            println!("{text}");
        }
    }
    fn eprint(&self, text: &str) {
        self.write_pending_chart();
        if self.speaks {
            eprintln!("{text}");
        }
    }
    fn stream_generated(&self, text: &str, to_stdout: bool) {
        // Into the progress area, where a person watches: stdout keeps what
        // the script prints, unless the script asks for the stream there.
        use std::io::{IsTerminal, Write};
        if self.speaks && to_stdout {
            let mut out = std::io::stdout();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        } else if self.speaks && std::io::stderr().is_terminal() {
            let mut err = std::io::stderr();
            let _ = err.write_all(text.as_bytes());
            let _ = err.flush();
        }
    }
    fn page(&self, text: &str) {
        // Help reads at the terminal's width; indented lines (examples) keep theirs.
        use std::io::IsTerminal;
        if !std::io::stdout().is_terminal() {
            return self.print(text);
        }
        let width = textwrap::termwidth().max(40);
        let wrapped: Vec<String> = text.lines().map(|l| if l.starts_with(char::is_whitespace) || l.chars().count() <= width { l.to_string() } else { textwrap::fill(l, width) }).collect();
        self.print(&wrapped.join("\n"));
    }
    fn train_observer(&self) -> Box<dyn TrainObserver> {
        self.write_pending_chart();
        if !self.speaks {
            return Box::new(tunebook::train::Silent);
        }
        Box::new(tunebook::render::TerminalProgress::new())
    }
    fn show_chart(&self, chart: &tunebook::plot::Chart) {
        self.write_pending_chart();
        if self.speaks {
            *self.pending_chart.borrow_mut() = Some(chart.clone());
        }
    }
    fn chart_saved(&self) {
        self.pending_chart.borrow_mut().take();
    }
    fn input(&self, prompt: &str) -> Option<String> {
        use std::io::Write;
        self.write_pending_chart();
        print!("{prompt}");
        std::io::stdout().flush().ok()?;
        let mut line = String::new();
        match std::io::stdin().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_string()),
        }
    }
}

