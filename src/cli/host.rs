//! The terminal as a script host, for `tunebook run` and `tunebook repl`.

use std::path::PathBuf;

use tunebook::script::Host;
use tunebook::train::TrainObserver;

/// The terminal as a script host: prints to stdout, progress bars on
/// stderr, charts as PNG files under `out/plots/`. In a distributed run
/// only rank 0 prints and draws, as only it writes.
pub struct TerminalHost {
    script_stem: String,
    charts: std::cell::Cell<usize>,
    speaks: bool,
}

impl TerminalHost {
    /// A host whose charts are named after `script_stem`.
    pub fn new(script_stem: &str) -> Self {
        Self { script_stem: script_stem.to_string(), charts: std::cell::Cell::new(0), speaks: tunebook::distributed::is_main_process() }
    }
}

impl Host for TerminalHost {
    fn print(&self, text: &str) {
        if self.speaks {
            println!("{text}");
        }
    }
    fn train_observer(&self) -> Box<dyn TrainObserver> {
        if !self.speaks {
            return Box::new(tunebook::train::Silent);
        }
        Box::new(tunebook::render::TerminalProgress::new())
    }
    fn show_chart(&self, chart: &tunebook::plot::Chart) {
        if !self.speaks {
            return;
        }
        let n = self.charts.get() + 1;
        self.charts.set(n);
        let path = PathBuf::from("out/plots").join(format!("{}-{n}.png", self.script_stem));
        match chart.save(&path) {
            Ok(()) => println!("chart saved to {}", path.display()),
            Err(e) => eprintln!("warning: could not write the chart {}: {e:#}", path.display()),
        }
    }
    fn input(&self, prompt: &str) -> Option<String> {
        use std::io::Write;
        print!("{prompt}");
        std::io::stdout().flush().ok()?;
        let mut line = String::new();
        match std::io::stdin().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_string()),
        }
    }
}

