//! The training loop's guarantees: a resumed run repeats an uninterrupted
//! one step for step, runs are deterministic, checkpoints are written
//! atomically and pruned, gradient accumulation equals a bigger batch, and
//! the loss options do what they say.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tch::{Device, Tensor};
use tunebook::data::{DataLoader, LoaderOptions, TextDataset, TokenizedDataset};
use tunebook::model::{LoadOptions, TextModel, Pooling};
use tunebook::train::{self, CheckpointOptions, ClassWeights, FitOptions, Schedule, StopFlag, TrainEvent, TrainObserver, TrainRun};

mod common;

/// libtorch has one global random generator, which dropout draws from and
/// each epoch reseeds: tests that train run one at a time, so that another
/// test's draws never land in the middle of a run being compared bit for bit.

/// The tiny BERT fixture, with dropout switched off when `dropout` is false.
fn tiny(dir: &Path, dropout: bool) -> TextModel {
    let src = common::repo().join("tests/fixtures/tiny-bert");
    for f in ["vocab.txt", "pytorch_model.bin"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    if !dropout {
        config["hidden_dropout_prob"] = 0.0.into();
        config["attention_probs_dropout_prob"] = 0.0.into();
    }
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    tch::manual_seed(0);
    TextModel::load("tiny", dir, &LoadOptions { labels: Some(vec!["bad".into(), "good".into()]), pooling: Pooling::Mean, task: None, device: Device::Cpu, dropout: None }).unwrap()
}

fn reviews() -> TextDataset {
    let words = ["the film is good", "a great story", "fun and short", "the plot is dull", "bad actor", "long and dull", "love the story", "hate the plot"];
    let pairs: Vec<(String, String)> = (0..48)
        .map(|i| {
            let text = format!("{} {}", words[i % 8], words[(i * 3) % 8]);
            let label = if ["good", "great", "fun", "love"].iter().any(|w| words[i % 8].contains(w)) { "good" } else { "bad" };
            (text, label.to_string())
        })
        .collect();
    TextDataset::from_pairs("reviews", &pairs).unwrap()
}

fn loader(model: &TextModel, data: &TextDataset, batch: usize, shuffle: bool) -> DataLoader {
    let tokens = TokenizedDataset::new(data, &model.tokenizer, 16).unwrap();
    DataLoader::new(std::sync::Arc::new(tokens), LoaderOptions { batch_size: batch, shuffle, seed: 3, drop_last: false, bucket: false, packing: false }).unwrap()
}

/// Records events, and sets the stop flag after epoch `stop_after`.
struct Recorder {
    events: Vec<TrainEvent>,
    stop_after: Option<(usize, StopFlag)>,
}

impl TrainObserver for Recorder {
    fn on_event(&mut self, e: &TrainEvent) {
        if let (TrainEvent::EpochEnd(r), Some((n, flag))) = (e, &self.stop_after) {
            if r.epoch == *n {
                flag.store(true, Ordering::SeqCst);
            }
        }
        self.events.push(e.clone());
    }
}

fn fit(model: &mut TextModel, opts: &FitOptions, stop_after: Option<usize>) -> (TrainRun, Vec<TrainEvent>) {
    fit_on(reviews(), model, opts, stop_after)
}

/// The reviews with labels that have nothing to do with the words: the
/// validation loss soon stops falling.
fn noisy_reviews() -> TextDataset {
    let data = reviews();
    let pairs: Vec<(String, String)> = data.texts.iter().enumerate().map(|(i, t)| (t.clone(), if (i * 7919) % 5 < 2 { "good" } else { "bad" }.to_string())).collect();
    TextDataset::from_pairs("noisy", &pairs).unwrap()
}

fn fit_on(data: TextDataset, model: &mut TextModel, opts: &FitOptions, stop_after: Option<usize>) -> (TrainRun, Vec<TrainEvent>) {
    let (train_data, val_data) = data.split(0.25, 1).unwrap();
    let (train, val) = (loader(model, &train_data, 8, true), loader(model, &val_data, 16, false));
    let stop: StopFlag = Arc::new(AtomicBool::new(false));
    let mut rec = Recorder { events: Vec::new(), stop_after: stop_after.map(|n| (n, stop.clone())) };
    let run = train::fit(model, &train, Some(&val), opts, &mut rec, &stop).unwrap_or_else(|e| panic!("{e:#}"));
    (run, rec.events)
}

fn options(epochs: usize) -> FitOptions {
    FitOptions { lr: 3e-3, epochs, seed: Some(7), schedule: Schedule::Linear, warmup: 0.1, ..FitOptions::default() }
}

fn losses(run: &TrainRun) -> Vec<u64> {
    run.steps.iter().map(|s| s.loss.to_bits()).collect()
}

/// A scratch folder with three empty model folders: an uninterrupted run,
/// an interrupted one, and its resumption.
fn three_model_folders() -> (tempfile::TempDir, [std::path::PathBuf; 3]) {
    let work = tempfile::tempdir().unwrap();
    let dirs = ["a", "b", "c"].map(|n| work.path().join(n));
    for d in &dirs {
        std::fs::create_dir(d).unwrap();
    }
    (work, dirs)
}

#[test]
fn a_resumed_run_repeats_the_uninterrupted_one_bit_for_bit() {
    let _serial = common::serial();
    let (work, [a, b, c]) = three_model_folders();
    let ckpt = work.path().join("ckpt");
    let checkpoint = Some(CheckpointOptions { dir: ckpt.clone(), keep: 2 });

    let (straight, _) = fit(&mut tiny(&a, true), &options(4), None);
    let (again, _) = fit(&mut tiny(&a, true), &options(4), None);
    assert_eq!(losses(&straight), losses(&again), "the same seed gives the same loss curve");

    // Stopped after epoch 2 (as an interrupt does), then resumed in a fresh model.
    let (first, _) = fit(&mut tiny(&b, true), &FitOptions { checkpoint: checkpoint.clone(), ..options(4) }, Some(2));
    assert!(first.interrupted && first.epochs.len() == 2);
    let (resumed, events) = fit(&mut tiny(&c, true), &FitOptions { checkpoint, resume: Some(ckpt.clone()), ..options(4) }, None);
    assert!(events.iter().any(|e| matches!(e, TrainEvent::Resumed { epoch: 2, .. })));
    assert_eq!(resumed.steps.len(), straight.steps.len());
    assert_eq!(losses(&resumed), losses(&straight), "the resumed run's losses match the uninterrupted run's");
    let val = |r: &TrainRun| r.epochs.iter().map(|e| e.val.unwrap().loss.to_bits()).collect::<Vec<_>>();
    assert_eq!(val(&resumed), val(&straight));

    // keep: 2 leaves the last two epochs (and the best) and no staging folders.
    let mut left: Vec<String> = std::fs::read_dir(&ckpt).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    let latest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(ckpt.join("latest.json")).unwrap()).unwrap();
    assert_eq!(latest["folder"], "epoch-4");
    let best = latest["best"].as_str().unwrap().to_string();
    let mut expected = vec!["epoch-3".to_string(), "epoch-4".to_string(), "latest.json".to_string()];
    if !expected.contains(&best) {
        expected.push(best);
    }
    expected.sort();
    assert_eq!(left, expected);
    for f in ["model.safetensors", "optimizer.safetensors", "state.json"] {
        assert!(ckpt.join("epoch-4").join(f).exists(), "{f}");
    }
}

#[test]
fn a_resume_keeps_the_plateau_and_early_stopping_state_bit_for_bit() {
    let _serial = common::serial();
    let (work, [a, b, c]) = three_model_folders();
    let ckpt = work.path().join("ckpt");
    // Labels unrelated to the words: the validation loss soon stops
    // falling, so the plateau rule halves the rate and early stopping ends
    // the run, both after the interruption below, from checkpointed state.
    let opts = || FitOptions {
        lr: 3e-3,
        schedule: Schedule::ReduceOnPlateau,
        warmup: 0.0,
        early_stopping: Some(train::EarlyStopping { monitor: train::Monitor::ValLoss, patience: 3, min_delta: 0.0, restore_best: true }),
        ..options(12)
    };
    let (straight, _) = fit_on(noisy_reviews(), &mut tiny(&a, true), &opts(), None);
    let rates = |r: &TrainRun| r.steps.iter().map(|s| s.lr.to_bits()).collect::<Vec<_>>();
    let halved_late = straight.steps.iter().skip(2 * 5).any(|s| s.lr < 3e-3);
    assert!(halved_late && straight.stopped_early_at.is_some_and(|e| e > 2), "the premise: a halving and an early stop after epoch 2; rates {:?}, stopped at {:?}", straight.steps.iter().map(|s| s.lr).collect::<Vec<_>>(), straight.stopped_early_at);

    let checkpoint = Some(CheckpointOptions { dir: ckpt.clone(), keep: 2 });
    let (first, _) = fit_on(noisy_reviews(), &mut tiny(&b, true), &FitOptions { checkpoint: checkpoint.clone(), ..opts() }, Some(2));
    assert!(first.interrupted && first.epochs.len() == 2);
    let mut resumed_model = tiny(&c, true);
    let (resumed, _) = fit_on(noisy_reviews(), &mut resumed_model, &FitOptions { checkpoint, resume: Some(ckpt.clone()), ..opts() }, None);
    assert_eq!(losses(&resumed), losses(&straight), "the resumed run's losses match the uninterrupted run's");
    assert_eq!(rates(&resumed), rates(&straight), "the same rates, halvings included");
    assert_eq!((resumed.best_epoch, resumed.stopped_early_at), (straight.best_epoch, straight.stopped_early_at));
    // The best epoch's weights were put back in both.
    let mut straight_model = tiny(&a, true);
    let _ = fit_on(noisy_reviews(), &mut straight_model, &opts(), None);
    for ((name, x), (_, y)) in straight_model.named_parameters().iter().zip(resumed_model.named_parameters().iter()) {
        assert!(x.equal(y), "{name} differs after the restore");
    }
}

#[test]
fn accumulating_two_batches_of_8_equals_one_batch_of_16() {
    let _serial = common::serial();
    // Plain SGD, whose update is proportional to the gradient: a wrongly
    // scaled accumulated gradient would show (Adam's would hide it).
    let work = tempfile::tempdir().unwrap();
    let data = reviews().take(32);
    let run = |batch: usize, accumulate: usize| -> HashMap<String, Tensor> {
        let mut model = tiny(work.path(), false);
        let train = loader(&model, &data, batch, false);
        let opts = FitOptions {
            optimizer: train::Method::Sgd { momentum: 0.0, nesterov: false },
            lr: 0.5,
            epochs: 1,
            accumulate,
            schedule: Schedule::Constant,
            warmup: 0.0,
            max_grad_norm: None,
            seed: Some(1),
            ..FitOptions::default()
        };
        let r = train::fit(&mut model, &train, None, &opts, &mut train::Silent, &Arc::new(AtomicBool::new(false))).unwrap();
        assert_eq!(r.steps.len(), 2, "32 rows in steps of 16");
        model.named_parameters().into_iter().map(|(n, t)| (n, t.detach().copy())).collect()
    };
    let (accumulated, big) = (run(8, 2), run(16, 1));
    let start: HashMap<String, Tensor> = tiny(work.path(), false).named_parameters().into_iter().map(|(n, t)| (n, t.detach().copy())).collect();
    for (name, t) in &big {
        // Float sums in another order differ by rounding only: far below the update itself,
        // while a wrongly scaled accumulated gradient would be off by the whole update.
        let update = (t - &start[name]).abs().max().double_value(&[]);
        let diff = (t - &accumulated[name]).abs().max().double_value(&[]);
        assert!(diff <= 1e-5 + 1e-3 * update, "{name} differs by {diff} (update {update})");
    }
    let total_update: f64 = big.iter().map(|(n, t)| (t - &start[n]).abs().max().double_value(&[])).fold(0.0, f64::max);
    assert!(total_update > 1e-2, "the steps moved the weights ({total_update})");
}

#[test]
fn label_smoothing_and_class_weights_follow_their_definitions() {
    let _serial = common::serial();
    let work = tempfile::tempdir().unwrap();
    let mut model = tiny(work.path(), false);
    // An unbalanced set: 36 bad, 12 good.
    let pairs: Vec<(String, String)> = (0..48).map(|i| (format!("the film {i}"), if i % 4 == 0 { "good" } else { "bad" }.to_string())).collect();
    let data = TextDataset::from_pairs("unbalanced", &pairs).unwrap();
    let train = loader(&model, &data, 48, false);
    let opts = |cw, ls| FitOptions { lr: 1e-9, epochs: 1, class_weights: cw, label_smoothing: ls, schedule: Schedule::Constant, warmup: 0.0, seed: Some(1), ..FitOptions::default() };
    let first_loss = |model: &mut TextModel, o: FitOptions| train::fit(model, &train, None, &o, &mut train::Silent, &Arc::new(AtomicBool::new(false))).unwrap().steps[0].loss;
    // The loss of the first step, before any update, against the formulas.
    let batch = train.collate(&(0..48).collect::<Vec<_>>(), Device::Cpu, None).unwrap();
    let logits = tch::no_grad(|| tunebook::model::Learner::forward(&model, &batch.inputs, false).unwrap());
    let logp = logits.log_softmax(-1, tch::Kind::Double);
    let labels: Vec<i64> = Vec::try_from(&batch.labels).unwrap();
    let nll: Vec<f64> = labels.iter().enumerate().map(|(i, &l)| -logp.double_value(&[i as i64, l])).collect();
    let mean_logp: Vec<f64> = (0..48).map(|i| -(logp.double_value(&[i, 0]) + logp.double_value(&[i, 1])) / 2.0).collect();
    // Smoothing 0.2: (1 - 0.2) * nll + 0.2 * mean over classes of -log p.
    let smoothed: f64 = (0..48).map(|i| 0.8 * nll[i] + 0.2 * mean_logp[i]).sum::<f64>() / 48.0;
    let got = first_loss(&mut model, opts(None, 0.2));
    assert!((got - smoothed).abs() < 1e-5, "smoothed loss {got} vs {smoothed}");
    // Balanced: bad weighs 48 / (2 * 36), good 48 / (2 * 12); the mean is weighted.
    let w = |l: i64| if l == 0 { 48.0 / 72.0 } else { 2.0 };
    let weighted: f64 = labels.iter().zip(&nll).map(|(&l, n)| w(l) * n).sum::<f64>() / labels.iter().map(|&l| w(l)).sum::<f64>();
    let got = first_loss(&mut model, opts(Some(ClassWeights::Balanced), 0.0));
    assert!((got - weighted).abs() < 1e-5, "weighted loss {got} vs {weighted}");
    let err = train::fit(&mut model, &train, None, &opts(Some(ClassWeights::Given(vec![1.0])), 0.0), &mut train::Silent, &Arc::new(AtomicBool::new(false))).unwrap_err();
    assert!(err.to_string().contains("class_weights has 1 weights but the head has 2 classes"), "{err}");
}

#[test]
fn a_validation_set_with_one_class_is_reported() {
    let _serial = common::serial();
    let work = tempfile::tempdir().unwrap();
    let mut model = tiny(work.path(), true);
    let train = loader(&model, &reviews(), 16, true);
    let one_class = TextDataset::from_pairs("val", &[("the film is good".into(), "good".into()), ("a great story".into(), "good".into())]).unwrap();
    let val = loader(&model, &one_class, 2, false);
    let mut rec = Recorder { events: Vec::new(), stop_after: None };
    train::fit(&mut model, &train, Some(&val), &options(1), &mut rec, &Arc::new(AtomicBool::new(false))).unwrap();
    let warning = rec.events.iter().find_map(|e| e.note().filter(|n| n.starts_with("warning")));
    assert!(warning.as_deref().is_some_and(|w| w.contains("the validation set has 1 class of 2")), "{warning:?}");
}

#[test]
fn a_checkpoint_that_cannot_be_written_stops_with_a_clear_error_and_leaves_no_partial_folder() {
    let _serial = common::serial();
    // RLIMIT_FSIZE makes the weights file too large to write, as a full disk would.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ckpt.rhai"),
        "let m = load_model(\"minilm\", #{ labels: 2, pooling: \"mean\" });\nlet t = load_dataset(\"rotten_tomatoes\").take(16).tokenize(m, #{ max_len: 16 }).loader(#{ batch: 16 });\nlet run = fit(m, t, #{ epochs: 2, checkpoint: #{ dir: \"ckpt\" } });\n",
    )
    .unwrap();
    let cmd = format!("trap '' XFSZ; ulimit -f 20000; exec {} run ckpt.rhai --device cpu", common::tunebook_bin().display());
    let out = std::process::Command::new("bash").args(["-c", &cmd]).current_dir(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("ckpt.rhai:3:") && stderr.contains("cannot write the checkpoint's model.safetensors"), "{stderr}");
    assert!(stderr.contains("training stopped after epoch 1"), "{stderr}");
    let left: Vec<String> = std::fs::read_dir(dir.path().join("ckpt")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(left.is_empty(), "no partial checkpoint is left behind: {left:?}");
}

#[test]
fn evaluate_reports_per_class_scores_and_the_confusion_matrix() {
    let _serial = common::serial();
    let (mut session, _) = common::session();
    let r = session
        .eval(
            r#"let m = load_model("minilm", #{ labels: ["rotten", "fresh"], pooling: "mean" });
               let v = load_dataset("rotten_tomatoes").take(40).tokenize(m, #{ max_len: 16 }).loader(#{ batch: 20 });
               evaluate(m, v)"#,
            "eval.rhai",
        )
        .unwrap()
        .cast::<rhai::Map>();
    let confusion: Vec<Vec<i64>> = r["confusion"].clone().into_array().unwrap().into_iter().map(|row| row.into_array().unwrap().into_iter().map(|n| n.as_int().unwrap()).collect()).collect();
    assert_eq!(confusion.iter().flatten().sum::<i64>(), 40);
    let right = confusion[0][0] + confusion[1][1];
    assert!((r["accuracy"].as_float().unwrap() - right as f64 / 40.0).abs() < 1e-12);
    let per_class = r["per_class"].clone().into_array().unwrap();
    assert_eq!(per_class.len(), 2);
    let f1s: Vec<f64> = per_class.iter().map(|c| c.clone().cast::<rhai::Map>()["f1"].as_float().unwrap()).collect();
    assert!((r["f1"].as_float().unwrap() - (f1s[0] + f1s[1]) / 2.0).abs() < 1e-12, "macro F1 is the mean of the per-class F1");
}

#[test]
fn lr_find_suggests_a_rate_on_the_falling_slope_and_puts_the_weights_back() {
    let _serial = common::serial();
    let work = tempfile::tempdir().unwrap();
    let mut model = tiny(work.path(), false);
    let before: HashMap<String, Tensor> = model.named_parameters().into_iter().map(|(n, t)| (n, t.detach().copy())).collect();
    let train = loader(&model, &reviews(), 8, true);
    let opts = train::LrFindOptions { start: 1e-6, end: 10.0, steps: 60 };
    let found = train::lr_find(&mut model, &train, &FitOptions::default(), &opts, &Arc::new(AtomicBool::new(false))).unwrap();
    for (name, t) in model.named_parameters() {
        assert!(t.equal(&before[&name]), "{name} was not put back");
    }
    assert!(found.lrs.windows(2).all(|w| w[1] > w[0]), "rates rise");
    assert!((found.lrs[0] - 1e-6).abs() < 1e-18);
    let (min_i, min) = found.losses.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).unwrap();
    assert!(*min < found.losses[0], "the loss fell somewhere in the range");
    assert!(found.suggestion <= found.lrs[min_i] && found.suggestion > 1e-6, "the suggestion {} is on the way down to the minimum at {}", found.suggestion, found.lrs[min_i]);
    let chart = tunebook::plot::lr_find_curve(&found);
    let svg = chart.svg().unwrap();
    assert!(svg.contains("learning rate (log scale)") && svg.contains("suggested"), "the chart marks the suggestion");
    assert_eq!(&chart.png().unwrap()[1..4], b"PNG");
    let err = train::lr_find(&mut model, &train, &FitOptions::default(), &train::LrFindOptions { start: 1.0, end: 0.1, steps: 50 }, &Arc::new(AtomicBool::new(false))).unwrap_err();
    assert!(err.to_string().contains("0 < start < end"), "{err}");
}

#[test]
fn a_run_saved_as_json_lines_reads_back_exactly() {
    let _serial = common::serial();
    let work = tempfile::tempdir().unwrap();
    let (run, _) = fit(&mut tiny(work.path(), true), &options(2), None);
    let path = work.path().join("runs/first.jsonl");
    run.save_jsonl(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 1 + run.steps.len() + run.epochs.len());
    assert!(text.lines().next().unwrap().contains("\"kind\":\"run\""));
    let back = TrainRun::load_jsonl(&path).unwrap();
    assert_eq!(back.steps, run.steps);
    assert_eq!(back.epochs.iter().map(|e| (e.epoch, e.train_loss.to_bits(), e.val.map(|v| v.loss.to_bits()))).collect::<Vec<_>>(), run.epochs.iter().map(|e| (e.epoch, e.train_loss.to_bits(), e.val.map(|v| v.loss.to_bits()))).collect::<Vec<_>>());
    assert_eq!((back.trainable_params, back.seconds.to_bits()), (run.trainable_params, run.seconds.to_bits()));
    std::fs::write(work.path().join("bad.jsonl"), "{\"kind\":\"run\"}\n{\"kind\":\"weird\"}\n").unwrap();
    let err = TrainRun::load_jsonl(&work.path().join("bad.jsonl")).unwrap_err().to_string();
    assert!(err.contains("bad.jsonl:2: unknown record kind"), "{err}");
}

#[test]
fn a_run_saved_as_csv_is_one_table_that_reads_back_exactly() {
    let _serial = common::serial();
    let work = tempfile::tempdir().unwrap();
    let (run, _) = fit(&mut tiny(work.path(), true), &options(2), None);
    let path = work.path().join("runs/first.csv");
    run.save(&path).unwrap();
    // One table: a header, a row per step, per epoch and the totals, each
    // with as many cells as the header (what pandas.read_csv needs).
    let mut reader = csv::Reader::from_path(&path).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    for column in ["kind", "step", "epoch", "loss", "learning_rate", "train_loss", "val_loss", "val_accuracy", "trainable_params", "train_seconds"] {
        assert!(header.contains(&column.to_string()), "no {column} column in {header:?}");
    }
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let kind = |k: &str| rows.iter().filter(|r| &r[0] == k).count();
    assert_eq!((kind("step"), kind("epoch"), kind("run")), (run.steps.len(), run.epochs.len(), 1));
    let at = |name: &str| header.iter().position(|h| h == name).unwrap();
    let last_epoch = rows.iter().rfind(|r| &r[0] == "epoch").unwrap();
    assert_eq!(last_epoch[at("val_accuracy")].parse::<f64>().unwrap(), run.final_val().unwrap().accuracy.unwrap());
    assert_eq!(rows[0][at("val_loss")], *"", "a step row has no validation values");
    let back = TrainRun::load(&path).unwrap();
    assert_eq!(back.steps, run.steps);
    assert_eq!(back.epochs, run.epochs);
    assert_eq!(back.evaluations, run.evaluations);
    assert_eq!((back.trainable_params, back.total_params, back.train_seconds.to_bits(), back.device.as_str()), (run.trainable_params, run.total_params, run.train_seconds.to_bits(), run.device.as_str()));
    // A CSV that is not a run says what it has.
    std::fs::write(work.path().join("scores.csv"), "text,label\na,1\n").unwrap();
    let err = TrainRun::load(&work.path().join("scores.csv")).unwrap_err().to_string();
    assert!(err.contains("scores.csv has no 'kind' column") && err.contains("its columns: text, label"), "{err}");
}

/// Sets the stop flag when evaluation of epoch `epoch` begins, as a Ctrl-C
/// or the notebook's stop button arriving then would.
struct StopWhenEvaluating {
    epoch: usize,
    flag: StopFlag,
}

impl TrainObserver for StopWhenEvaluating {
    fn on_event(&mut self, e: &TrainEvent) {
        if matches!(e, TrainEvent::Evaluating { epoch } if *epoch == self.epoch) {
            self.flag.store(true, Ordering::SeqCst);
        }
    }
}

#[test]
fn interrupts_during_evaluation_and_at_a_checkpoint_leave_the_checkpoints_consistent() {
    let _serial = common::serial();
    let work = tempfile::tempdir().unwrap();
    let ckpt = work.path().join("ckpt");
    let checkpoint = Some(CheckpointOptions { dir: ckpt.clone(), keep: 5 });
    let mut model = tiny(work.path(), true);
    let data = reviews();
    let (train_data, val_data) = data.split(0.25, 1).unwrap();
    let (train, val) = (loader(&model, &train_data, 8, true), loader(&model, &val_data, 2, false));

    // Interrupted while evaluating epoch 2: epoch 2 is not recorded, and the
    // checkpoints stay at epoch 1, complete.
    let stop: StopFlag = Arc::new(AtomicBool::new(false));
    let mut observer = StopWhenEvaluating { epoch: 2, flag: stop.clone() };
    let run = train::fit(&mut model, &train, Some(&val), &FitOptions { checkpoint: checkpoint.clone(), ..options(4) }, &mut observer, &stop).unwrap();
    assert!(run.interrupted);
    assert_eq!(run.epochs.len(), 1);
    let saved = train::checkpoint::load_latest(&ckpt).unwrap();
    assert_eq!((saved.state.epoch, saved.state.epochs.len()), (1, 1));
    assert!(!ckpt.join("epoch-2").exists());

    // Interrupted as epoch 2 ends, just before its checkpoint is written (the
    // stop flag is only read between batches): the checkpoint is written in
    // full, then the run stops, and resuming from it goes on at epoch 3.
    let (run, _) = fit(&mut model, &FitOptions { checkpoint: checkpoint.clone(), resume: Some(ckpt.clone()), ..options(4) }, Some(2));
    assert!(run.interrupted);
    let saved = train::checkpoint::load_latest(&ckpt).unwrap();
    assert_eq!((saved.state.epoch, saved.state.epochs.len()), (2, 2));
    let (run, events) = fit(&mut model, &FitOptions { checkpoint, resume: Some(ckpt.clone()), ..options(4) }, None);
    assert!(events.iter().any(|e| matches!(e, TrainEvent::Resumed { epoch: 2, .. })));
    assert!(!run.interrupted && run.epochs.len() == 4);
    let left: Vec<String> = std::fs::read_dir(&ckpt).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with('.')).collect();
    assert!(left.is_empty(), "unfinished writes left: {left:?}");
}

#[test]
fn a_loss_that_turns_nan_stops_the_run_and_points_at_the_last_good_checkpoint() {
    let _serial = common::serial();
    let work = tempfile::tempdir().unwrap();
    let ckpt = work.path().join("ckpt");
    let checkpoint = Some(CheckpointOptions { dir: ckpt.clone(), keep: 2 });
    let mut model = tiny(work.path(), true);
    fit(&mut model, &FitOptions { checkpoint: checkpoint.clone(), ..options(2) }, Some(1));
    // The second epoch with an absurd rate: SGD sends the weights to infinity, and the loss to NaN.
    let data = reviews();
    let train = loader(&model, &data, 8, true);
    let wild = FitOptions { optimizer: train::Method::Sgd { momentum: 0.0, nesterov: false }, lr: 1e30, max_grad_norm: None, checkpoint, resume: Some(ckpt.clone()), ..options(2) };
    let err = train::fit(&mut model, &train, None, &wild, &mut train::Silent, &Arc::new(AtomicBool::new(false))).unwrap_err().to_string();
    assert!(err.contains("the training loss became NaN") || err.contains("the training loss became inf"), "{err}");
    assert!(err.contains("lower the learning rate") && err.contains(&format!("the last good checkpoint is in {}", ckpt.display())), "{err}");
    // That checkpoint is intact and loads.
    let latest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(ckpt.join("latest.json")).unwrap()).unwrap();
    assert_eq!(latest["folder"], "epoch-1");
    let saved = train::checkpoint::load_latest(&ckpt).unwrap();
    assert!(saved.model.values().all(|t| t.isfinite().all().int64_value(&[]) == 1));
}

#[test]
fn eval_every_evaluates_between_epoch_ends() {
    let _serial = common::serial();
    let work = tempfile::tempdir().unwrap();
    let mut model = tiny(work.path(), true);
    // 36 training rows in batches of 8: 5 steps an epoch; epochs end at steps 5 and 10.
    let (run, events) = fit(&mut model, &FitOptions { eval_every: Some(2), ..options(2) }, None);
    let steps: Vec<usize> = run.evaluations.iter().map(|e| e.step).collect();
    assert_eq!(steps, [2, 4, 6, 8]);
    assert_eq!(run.evaluations[2].epoch, 2);
    assert_eq!(events.iter().filter(|e| matches!(e, TrainEvent::Evaluated(_))).count(), 4);
    let data = reviews();
    let train = loader(&model, &data, 8, false);
    let err = train::fit(&mut model, &train, None, &FitOptions { eval_every: Some(2), ..options(1) }, &mut train::Silent, &Arc::new(AtomicBool::new(false))).unwrap_err();
    assert!(err.to_string().contains("eval_every evaluates on the validation set"), "{err}");
}

#[test]
fn bf16_and_fp16_autocast_train_with_fp32_weights_to_about_the_fp32_loss() {
    use tunebook::runtime::precision::Precision;
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = reviews();
    let stop = Arc::new(AtomicBool::new(false));
    let ckpt = dir.path().join("ckpt");
    let run_in = |precision| {
        let mut model = tiny(dir.path(), false);
        let batches = loader(&model, &data, 8, false);
        let checkpoint = (precision == Precision::Fp16).then(|| CheckpointOptions { dir: ckpt.clone(), keep: 1 });
        let opts = FitOptions { lr: 1e-3, epochs: 4, schedule: Schedule::Constant, warmup: 0.0, seed: Some(1), precision, checkpoint, ..FitOptions::default() };
        let run = train::fit(&mut model, &batches, Some(&batches), &opts, &mut train::Silent, &stop).unwrap();
        (run, model)
    };
    let (fp32, _) = run_in(Precision::Fp32);
    let (bf16, model) = run_in(Precision::Bf16);
    // Autocast changed the arithmetic of the very first forward pass, by little.
    let (a, b) = (fp32.steps[0].loss, bf16.steps[0].loss);
    assert!(a != b && (a - b).abs() < 0.02 * a, "first losses: fp32 {a}, bf16 {b}");
    // The weights, and so the optimizer's updates, stay fp32.
    assert!(model.named_parameters().iter().all(|(_, t)| t.kind() == tch::Kind::Float));
    // And it learns what fp32 learns.
    let last = |run: &TrainRun| (run.epochs.last().unwrap().train_loss, run.epochs.last().unwrap().val.as_ref().unwrap().loss);
    let ((fa, fv), (ba, bv)) = (last(&fp32), last(&bf16));
    assert!(ba < 0.9 * bf16.epochs[0].train_loss, "bf16 training loss fell from {} to {ba}", bf16.epochs[0].train_loss);
    assert!((fa - ba).abs() < 0.05 && (fv - bv).abs() < 0.05, "fp32 train/val {fa}/{fv}, bf16 {ba}/{bv}");
    assert_eq!((bf16.loss_scale, bf16.skipped_steps), (None, 0), "bf16 scales no loss");
    // fp16: 3 more bits of mantissa than bf16, so closer still; its loss is scaled.
    let (fp16, model) = run_in(Precision::Fp16);
    let c = fp16.steps[0].loss;
    assert!(a != c && (a - c).abs() < 0.005 * a, "first losses: fp32 {a}, fp16 {c}");
    assert!(model.named_parameters().iter().all(|(_, t)| t.kind() == tch::Kind::Float));
    let (ha, hv) = last(&fp16);
    assert!((fa - ha).abs() < 0.05 && (fv - hv).abs() < 0.05, "fp32 train/val {fa}/{fv}, fp16 {ha}/{hv}");
    // Each skipped step halved the scale (it grows only after 2000 good ones) and shows an infinite norm.
    let skipped = fp16.steps.iter().filter(|s| s.grad_norm == Some(f64::INFINITY)).count();
    eprintln!("fp16: {skipped} of {} steps skipped; final scale {:?}", fp16.steps.len(), fp16.loss_scale);
    assert_eq!(fp16.skipped_steps, skipped);
    assert_eq!(fp16.loss_scale, Some(65536.0 / 2f64.powi(skipped as i32)));
    assert!(skipped < fp16.steps.len() / 2, "{skipped} of {} steps skipped", fp16.steps.len());
    // The checkpoint keeps the scaler: its scale, the good steps since the last skip, the skips.
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(ckpt.join("epoch-4/state.json")).unwrap()).unwrap();
    let good_run = fp16.steps.iter().rev().take_while(|s| s.grad_norm != Some(f64::INFINITY)).count();
    assert_eq!(state["loss_scale"], serde_json::json!([fp16.loss_scale.unwrap(), good_run, skipped]));
}

#[test]
fn fp16_steps_that_overflow_are_skipped_halving_the_scale_and_pausing_the_schedule() {
    use tunebook::runtime::precision::Precision;
    use tunebook::train::loss_scale::ScalerConfig;
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = reviews();
    let mut model = tiny(dir.path(), false);
    let batches = loader(&model, &data, 8, false);
    // A first scale of 2^24 overflows this model's fp16 gradients until it has
    // halved enough (measured: to 2^18, after 6 skipped steps).
    let scaler = ScalerConfig { init_scale: 2f64.powi(24), ..ScalerConfig::default() };
    let opts = FitOptions { lr: 1e-3, epochs: 4, schedule: Schedule::Linear, warmup: 0.0, seed: Some(1), precision: Precision::Fp16, loss_scaler: scaler, ..FitOptions::default() };
    let run = train::fit(&mut model, &batches, None, &opts, &mut train::Silent, &Arc::new(AtomicBool::new(false))).unwrap();
    let skipped: Vec<bool> = run.steps.iter().map(|s| s.grad_norm == Some(f64::INFINITY)).collect();
    let count = skipped.iter().filter(|&&s| s).count();
    eprintln!("{count} of {} steps skipped; final scale {:?}", run.steps.len(), run.loss_scale);
    assert!(count >= 2 && count < run.steps.len() / 2, "{count} of {} steps skipped", run.steps.len());
    assert_eq!(run.skipped_steps, count);
    assert_eq!(run.loss_scale, Some(2f64.powi(24 - count as i32)), "halved once per skipped step");
    // The rate of each step is the schedule's at the count of steps taken (skipped ones not counted), as in HF's Trainer.
    let mut taken = 0;
    for (record, &was_skipped) in run.steps.iter().zip(&skipped) {
        let expected = 1e-3 * Schedule::Linear.factor(taken, run.steps.len(), 0);
        assert!((record.lr - expected).abs() < 1e-15, "step {}: rate {} where {expected} was due", record.step, record.lr);
        taken += usize::from(!was_skipped);
    }
    // The weights stayed finite and training went on after the skips.
    assert!(run.steps.last().unwrap().loss.is_finite());
    assert!(model.named_parameters().iter().all(|(_, t)| t.isfinite().all().int64_value(&[]) == 1));
}
