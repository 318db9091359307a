//! A run's history as JSON Lines: one summary line, then one line per step
//! and per epoch, so that runs can be kept, compared and charted later.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use super::{EpochRecord, StepRecord, TrainRun};

impl TrainRun {
    /// Writes the run as JSON Lines (through a temporary file and a rename).
    pub fn save_jsonl(&self, path: &Path) -> Result<()> {
        crate::distributed::main_process_writes(|| self.write_jsonl(path), || ())
    }

    fn write_jsonl(&self, path: &Path) -> Result<()> {
        let mut summary = serde_json::to_value(self)?;
        let obj = summary.as_object_mut().expect("a run serializes to an object");
        obj.remove("steps");
        obj.remove("epochs");
        obj.insert("kind".into(), "run".into());
        let mut text = serde_json::to_string(&summary)? + "\n";
        for s in &self.steps {
            text += &(json!({ "kind": "step", "step": s.step, "loss": s.loss, "lr": s.lr }).to_string() + "\n");
        }
        for e in &self.epochs {
            let mut v = serde_json::to_value(e)?;
            v.as_object_mut().expect("an epoch serializes to an object").insert("kind".into(), "epoch".into());
            text += &(v.to_string() + "\n");
        }
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(text.as_bytes()).and_then(|_| tmp.as_file().sync_all()).with_context(|| format!("cannot write {}", path.display()))?;
        tmp.persist(path).map_err(|e| anyhow!("cannot write {}: {}", path.display(), e.error))?;
        Ok(())
    }

    /// Reads what `save_jsonl` wrote.
    pub fn load_jsonl(path: &Path) -> Result<TrainRun> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the run {}", path.display()))?;
        let mut summary: Option<Value> = None;
        let (mut steps, mut epochs) = (Vec::new(), Vec::new());
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let bad = |e: serde_json::Error| anyhow!("{}:{}: not a run record ({e})", path.display(), i + 1);
            let v: Value = serde_json::from_str(line).map_err(bad)?;
            match v["kind"].as_str() {
                Some("run") => summary = Some(v),
                Some("step") => steps.push(serde_json::from_value::<StepRecord>(v).map_err(bad)?),
                Some("epoch") => epochs.push(serde_json::from_value::<EpochRecord>(v).map_err(bad)?),
                other => bail!("{}:{}: unknown record kind {other:?}; a run file has run, step and epoch lines", path.display(), i + 1),
            }
        }
        let mut summary = summary.ok_or_else(|| anyhow!("{} has no run line; was it written by run.save?", path.display()))?;
        let obj = summary.as_object_mut().expect("checked above");
        obj.remove("kind");
        obj.insert("steps".into(), json!([]));
        obj.insert("epochs".into(), json!([]));
        let mut run: TrainRun = serde_json::from_value(summary).with_context(|| format!("{}: the run line is incomplete", path.display()))?;
        run.steps = steps;
        run.epochs = epochs;
        Ok(run)
    }
}
