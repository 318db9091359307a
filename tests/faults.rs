//! Faults during training, injected on purpose: the process killed with
//! SIGKILL while it writes checkpoints, a write limit that makes files fail
//! to grow (as a full disk does), and interrupts during evaluation and
//! checkpointing. Each must leave the last complete checkpoint loadable and
//! never a half-written file in its place.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tunebook::train::checkpoint;

/// A folder with the tiny BERT fixture as `model/` and `train.rhai`, which
/// trains it with a checkpoint every epoch. `EPOCHS`, `RESUME` and `SAVE`
/// are overridable with --set.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::copy_tiny_bert(&dir.path().join("model"));
    std::fs::write(
        dir.path().join("train.rhai"),
        r#"
let EPOCHS = 2;
let RESUME = false;
let SAVE = "";
let model = load_model("model", #{ labels: ["bad", "good"] });
let rows = [];
for i in 0..64 {
    let good = i % 2 == 0;
    rows.push(#{ text: if good { "a good fun film" } else { "a dull bad plot" }, label: if good { "good" } else { "bad" } });
}
let data = dataset(rows).split(#{ val: 0.25, seed: 1 });
let train = data.train.tokenize(model, #{ max_len: 16 }).loader(#{ batch: 8, shuffle: true });
let val = data.val.tokenize(model, #{ max_len: 16 }).loader(#{ batch: 16 });
let options = #{ optimizer: "adamw", lr: 1e-3, epochs: EPOCHS, checkpoint: #{ dir: "ckpt", keep: 2 } };
if RESUME { options.resume = "ckpt"; }
let run = fit(model, train, val, options);
if SAVE != "" { model.save(SAVE); }
print(`trained; validation loss ${run.val_loss}`);
"#,
    )
    .unwrap();
    dir
}

fn tunebook(dir: &Path, sets: &[&str]) -> Command {
    let mut cmd = Command::new(common::tunebook_bin());
    cmd.current_dir(dir).args(["run", "train.rhai", "--device", "cpu"]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    cmd
}

/// Staging folders of checkpoints being written.
fn staging_folders(ckpt: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(ckpt).map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".epoch-")).collect()).unwrap_or_default()
}

/// The latest checkpoint must load completely: state, model and optimizer.
fn assert_loadable(ckpt: &Path) -> usize {
    let loaded = checkpoint::load_latest(ckpt).unwrap_or_else(|e| panic!("the last checkpoint does not load: {e:#}"));
    assert!(loaded.model.len() > 30, "the model has {} tensors", loaded.model.len());
    assert!(!loaded.optimizer.is_empty());
    assert_eq!(loaded.state.epochs.len(), loaded.state.epoch);
    loaded.state.epoch
}

#[test]
fn sigkill_while_checkpoints_are_written_leaves_the_last_one_loadable() {
    let ws = workspace();
    let ckpt = ws.path().join("ckpt");
    let (mut mid_write, mut kills) = (0, 0);
    // Odd trials are killed inside a checkpoint write, paused there by the
    // writer's test hook; even ones at a moment of the run that varies.
    for trial in 0..12u64 {
        let resume = if trial == 0 { "RESUME=false" } else { "RESUME=true" };
        let paused = trial % 2 == 1;
        let mut cmd = tunebook(ws.path(), &["EPOCHS=100000", resume]);
        if paused {
            cmd.env("TUNEBOOK_TEST_PAUSE_AT", "checkpoint-write");
        }
        // Staging folders earlier kills left (the next write removes them).
        let left_before = staging_folders(&ckpt);
        let new_staging = || staging_folders(&ckpt).into_iter().filter(|s| !left_before.contains(s)).collect::<Vec<_>>();
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let started = Instant::now();
        let delay = Duration::from_millis(1500 + (trial * 7919) % 2000);
        loop {
            let in_paused_write = new_staging().iter().any(|s| s.join(checkpoint::PAUSED_MARKER).exists());
            let after_a_checkpoint = ckpt.join("latest.json").exists() && started.elapsed() > delay;
            if (paused && in_paused_write) || (!paused && after_a_checkpoint) {
                child.kill().unwrap(); // SIGKILL
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the run ended ({status}) before it could be killed");
            }
            assert!(started.elapsed() < Duration::from_secs(120), "trial {trial}: not ready to be killed within two minutes");
            std::thread::sleep(Duration::from_millis(1));
        }
        child.wait().unwrap();
        kills += 1;
        let half_written = !new_staging().is_empty();
        assert!(half_written || !paused, "trial {trial}: killed inside a write, but no staging folder is left");
        mid_write += half_written as usize;
        assert_loadable(&ckpt);
    }
    // The user's way back: resume from what the kills left, then finish.
    let epoch = assert_loadable(&ckpt);
    let out = tunebook(ws.path(), &[&format!("EPOCHS={}", epoch + 1), "RESUME=true"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("trained; validation loss"));
    assert_eq!(assert_loadable(&ckpt), epoch + 1);
    assert!(staging_folders(&ckpt).is_empty(), "the resumed run removes what killed writers left behind");
    eprintln!("{kills} SIGKILLs, {mid_write} inside a checkpoint write; every time the last checkpoint loaded, and the run resumed from epoch {epoch}");
}

fn hashes(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), hex::encode(Sha256::digest(std::fs::read(e.path()).unwrap()))))
        .collect();
    files.sort();
    files
}

#[test]
fn a_write_that_cannot_grow_fails_cleanly_and_keeps_the_previous_files() {
    let ws = workspace();
    let ckpt = ws.path().join("ckpt");
    let out = tunebook(ws.path(), &["EPOCHS=2", "SAVE=saved"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let saved_before = hashes(&ws.path().join("saved"));
    let epoch2_before = hashes(&ckpt.join("epoch-2"));

    // RLIMIT_FSIZE of 128 KiB: the model file (88 KB) still fits, the
    // optimizer's (two moments, 176 KB) does not, and the write fails with
    // EFBIG as a full disk fails with ENOSPC. SIGXFSZ is ignored so that the
    // failure reaches Tunebook as an error instead of killing it.
    let mut cmd = Command::new("bash");
    cmd.current_dir(ws.path()).args(["-c", r#"trap '' XFSZ; ulimit -f 128; exec "$0" run train.rhai --device cpu --set EPOCHS=3 --set RESUME=true --set SAVE=saved"#]).arg(common::tunebook_bin());
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // The OS's words, not the library's debug text.
    assert!(stderr.contains("cannot write the checkpoint's optimizer.safetensors: File too large (os error 27)") && stderr.contains("training stopped after epoch 3"), "{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("IoError"), "{stderr}");

    assert_eq!(assert_loadable(&ckpt), 2, "latest.json still points at epoch 2");
    assert_eq!(hashes(&ckpt.join("epoch-2")), epoch2_before, "epoch 2's files are untouched");
    assert!(!ckpt.join("epoch-3").exists() && staging_folders(&ckpt).is_empty(), "nothing half-written is left");
    assert_eq!(hashes(&ws.path().join("saved")), saved_before, "the saved model is untouched");
}

#[test]
fn a_failed_model_save_leaves_the_previous_save_in_place() {
    let ws = workspace();
    let out = tunebook(ws.path(), &["EPOCHS=1", "SAVE=saved"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let before = hashes(&ws.path().join("saved"));
    // 64 KiB: smaller than model.safetensors (88 KB).
    std::fs::write(ws.path().join("save.rhai"), "let model = load_model(\"saved\");\nmodel.save(\"saved\");\n").unwrap();
    let out = Command::new("bash")
        .current_dir(ws.path())
        .args(["-c", r#"trap '' XFSZ; ulimit -f 64; exec "$0" run save.rhai --device cpu"#])
        .arg(common::tunebook_bin())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // The recovery folder cannot be written either under this limit: both are said.
    assert!(stderr.contains("save.rhai:2:") && stderr.contains("cannot save the model to saved: the file is too large for the file system; nor to out/recovered/saved-1") && !stderr.contains("IoError"), "{stderr}");
    assert_eq!(hashes(&ws.path().join("saved")), before, "the earlier save is intact");
    let leftovers: Vec<_> = std::fs::read_dir(ws.path()).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with('.')).collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn a_save_into_a_folder_that_cannot_be_written_keeps_the_trained_weights_and_the_old_contents() {
    use std::os::unix::fs::PermissionsExt;
    let ws = workspace();
    let out = tunebook(ws.path(), &["EPOCHS=1", "SAVE=locked/model"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let locked = ws.path().join("locked");
    let before = hashes(&locked.join("model"));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&locked.join("model/model.safetensors")), 0o644, "saved files are readable as usual (umask 022)");
    assert_eq!(mode(&locked.join("model")), 0o755);

    // The user cannot write in `locked`: as root (CI) the script runs as
    // nobody, who does not own it, where nobody can reach the binary and
    // libtorch; else the target's parent is a file in the way.
    let root = unsafe { libc::geteuid() } == 0;
    let as_nobody = || {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(common::tunebook_bin());
        c
    };
    let nobody_runs = root && as_nobody().arg("--version").output().is_ok_and(|o| o.status.success());
    let (mut cmd, target, reason) = if nobody_runs {
        for entry in walk(ws.path()) {
            if !entry.starts_with(&locked) {
                std::os::unix::fs::chown(&entry, Some(65534), Some(65534)).unwrap();
            }
        }
        (as_nobody(), "locked/model", "permission denied")
    } else if root {
        eprintln!("note: nobody cannot run {} here, so the unwritable target is a path through a file", common::tunebook_bin().display());
        std::fs::write(ws.path().join("blocked"), "a file, not a folder").unwrap();
        (Command::new(common::tunebook_bin()), "blocked/model", "a file is in the way of a folder on that path")
    } else {
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
        (Command::new(common::tunebook_bin()), "locked/model", "permission denied")
    };
    let out = cmd.current_dir(ws.path()).args(["run", "train.rhai", "--device", "cpu", "--set", "EPOCHS=1", "--set", &format!("SAVE={target}")]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cannot save the model to {target}: {reason}. The weights are safe in ")), "{stderr}");
    assert!(!stderr.contains(".tunebook-save-") && !stderr.contains("os error"), "no temporary path or raw OS error: {stderr}");
    let recovered = ws.path().join("out/recovered/model-1");
    assert!(stderr.contains(&recovered.canonicalize().unwrap().display().to_string()), "{stderr}");
    assert_eq!(hashes(&locked.join("model")), before, "the earlier save is intact");
    std::fs::write(ws.path().join("reload.rhai"), r#"print(load_model("out/recovered/model-1").labels);"#).unwrap();
    let reloaded = Command::new(common::tunebook_bin()).current_dir(ws.path()).args(["run", "reload.rhai", "--device", "cpu"]).output().unwrap();
    assert!(String::from_utf8_lossy(&reloaded.stdout).contains("bad"), "the recovered model loads: {}", String::from_utf8_lossy(&reloaded.stderr));
}

/// Every file and folder under `dir`, `dir` included.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_path_buf()];
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            all.extend(walk(&p));
        } else {
            all.push(p);
        }
    }
    all
}
