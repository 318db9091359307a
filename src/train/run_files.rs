//! A run's files by their names: `.csv` (`run_csv`), a folder of
//! TensorBoard event files (`tensorboard`), or JSON Lines (`history`).

use std::path::Path;

use anyhow::{bail, Result};

use super::history::TrainRun;
use super::{run_csv, tensorboard};

fn is_csv(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

impl TrainRun {
    /// Writes the run by the file's extension: `.csv` as one table (for
    /// spreadsheets and pandas), anything else as JSON Lines; through a
    /// temporary file and a rename.
    pub fn save(&self, path: &Path) -> Result<()> {
        if is_csv(path) {
            return crate::distributed::main_process_writes(|| crate::files::write_file(path, &run_csv::to_csv(self)?), || ());
        }
        self.save_jsonl(path)
    }

    /// Reads what `save` wrote, by the file's extension, or a folder of
    /// TensorBoard event files that `fit` wrote.
    pub fn load(path: &Path) -> Result<TrainRun> {
        if tensorboard::is_log_dir(path) {
            return tensorboard::read_run(path);
        }
        if path.is_dir() {
            let mut runs: Vec<String> = std::fs::read_dir(path)
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| tensorboard::is_log_dir(p)).map(|p| p.display().to_string()).collect())
                .unwrap_or_default();
            runs.sort();
            if runs.is_empty() {
                bail!("{} is a folder without TensorBoard event files; load_run reads a run file (.jsonl or .csv) or one run's TensorBoard folder", path.display());
            }
            bail!("{} holds {} runs; load_run reads one: {}", path.display(), runs.len(), runs.join(", "));
        }
        if is_csv(path) {
            return run_csv::read_csv(path);
        }
        Self::load_jsonl(path)
    }
}
