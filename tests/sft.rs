//! Supervised fine-tuning of a language model (the tiny random Llama that
//! transformers saved): labels on the assistant's answers only, the loss
//! as the mean over every label token of an accumulated step, LoRA that
//! learns and saves merged, and a resumed run that ends where an
//! uninterrupted one does.

mod common;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tch::{Device, Tensor};
use tunebook::data::chat::tokenize_examples;
use tunebook::data::{ChatDataset, DataLoader, Example, LoaderOptions, Message, SftOptions, TokenizedDataset, TrainOn};
use tunebook::model::layers::LoraConfig;
use tunebook::model::{CausalModel, Learner};
use tunebook::train::{self, FitOptions, Schedule, Silent};

fn tiny() -> CausalModel {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/decoders/tiny-llama");
    CausalModel::load("tiny", &dir, Device::Cpu).unwrap()
}

/// A short conversation (the tiny model has 64 positions and a tiny
/// vocabulary; a system message keeps the template's long default out).
fn chat(user: &str, answer: &str) -> Example {
    Example::Chat(vec![
        Message { role: "system".into(), content: "s".into() },
        Message { role: "user".into(), content: user.into() },
        Message { role: "assistant".into(), content: answer.into() },
    ])
}

/// Questions with one fixed answer each, of different lengths.
fn colours(n: usize) -> ChatDataset {
    let colours = ["red", "green", "blue", "the yellow one"];
    let examples = (0..n).map(|i| chat(&format!("t{i}{}", "?".repeat(i % 3)), colours[i % 4])).collect();
    ChatDataset { name: "colours".into(), examples }
}

fn tokenized(model: &CausalModel, data: &ChatDataset) -> Arc<TokenizedDataset> {
    Arc::new(tokenize_examples(data, model, SftOptions { max_len: 64, train_on: TrainOn::Answers, drop_long: false }).unwrap().0)
}

fn loader(data: &Arc<TokenizedDataset>, batch: usize) -> DataLoader {
    DataLoader::new(data.clone(), LoaderOptions { batch_size: batch, shuffle: false, seed: 0, drop_last: false, bucket: false, packing: false }).unwrap()
}

fn learned_text(model: &CausalModel, ids: &[u32], labels: &[i64]) -> String {
    let learned: Vec<i64> = labels.iter().filter(|&&l| l != -100).copied().collect();
    assert!(labels.iter().zip(ids.iter().skip(1)).all(|(&l, &next)| l == -100 || l == next as i64), "each label is the next token");
    model.decode(&learned, false).unwrap()
}

#[test]
fn labels_cover_the_answers_with_their_end_of_turn_and_nothing_else() {
    let model = tiny();
    let data = ChatDataset {
        name: "two turns".into(),
        examples: vec![Example::Chat(vec![
            Message { role: "system".into(), content: "Be brief.".into() },
            Message { role: "user".into(), content: "hi".into() },
            Message { role: "assistant".into(), content: "hello there".into() },
            Message { role: "user".into(), content: "and?".into() },
            Message { role: "assistant".into(), content: "bye".into() },
        ])],
    };
    let tokens = tokenized(&model, &data);
    let labels = &tokens.token_labels.as_ref().unwrap()[0];
    assert_eq!(learned_text(&model, &tokens.input_ids[0], labels), "hello there<|im_end|>\nbye<|im_end|>\n");
    // train_on all: every token after the first.
    let all = tokenize_examples(&data, &model, SftOptions { max_len: 64, train_on: TrainOn::All, drop_long: false }).unwrap().0;
    let labels = &all.token_labels.as_ref().unwrap()[0];
    assert_eq!(labels.iter().filter(|&&l| l != -100).count(), all.input_ids[0].len() - 1);
    // A raw completion learns the completion and the end-of-sequence token.
    let raw = ChatDataset { name: "raw".into(), examples: vec![Example::Completion { prompt: "2 + 2 =".into(), completion: " 4".into() }] };
    let raw = tokenized(&model, &raw);
    assert_eq!(learned_text(&model, &raw.input_ids[0], &raw.token_labels.as_ref().unwrap()[0]), " 4<|im_end|>");
}

#[test]
fn long_rows_are_cut_or_dropped_and_counted() {
    let model = tiny();
    let data = colours(8);
    let full = tokenized(&model, &data);
    let mut lengths: Vec<usize> = full.input_ids.iter().map(Vec::len).collect();
    lengths.sort();
    let limit = lengths[4];
    let longer = lengths.iter().filter(|&&l| l > limit).count();
    assert!(longer > 0);
    let (cut, report) = tokenize_examples(&data, &model, SftOptions { max_len: limit, train_on: TrainOn::Answers, drop_long: false }).unwrap();
    assert_eq!((cut.len(), report.truncated, report.dropped), (8, longer, 0));
    assert!(cut.input_ids.iter().all(|r| r.len() <= limit));
    let (kept, report) = tokenize_examples(&data, &model, SftOptions { max_len: limit, train_on: TrainOn::Answers, drop_long: true }).unwrap();
    assert_eq!((kept.len(), report.dropped), (8 - longer, longer));
}

fn sgd_one_step() -> FitOptions {
    FitOptions {
        optimizer: train::Method::Sgd { momentum: 0.0, nesterov: false },
        lr: 0.5,
        weight_decay: 0.0,
        schedule: Schedule::Constant,
        warmup: 0.0,
        max_grad_norm: None,
        max_steps: Some(1),
        epochs: 1,
        ..Default::default()
    }
}

#[test]
fn accumulated_micro_batches_give_the_gradient_of_one_batch_over_all_label_tokens() {
    let _lock = common::serial();
    // Answers of 1 to 5 words, so that batches of 4 hold different numbers of label tokens.
    let data = ChatDataset { name: "lengths".into(), examples: (0..16).map(|i| chat(&format!("t{i}"), "red ".repeat(1 + (i * i) % 5).trim())).collect() };
    let (mut whole, mut parts) = (tiny(), tiny());
    let tokens = tokenized(&whole, &data);
    let counts: Vec<usize> = (0..4).map(|b| tokens.label_tokens(&(4 * b..4 * b + 4).collect::<Vec<_>>())).collect();
    assert!(counts.iter().any(|&c| c != counts[0]), "the micro-batches hold different numbers of label tokens: {counts:?}");
    let stop = Arc::new(AtomicBool::new(false));
    let one = train::fit(&mut whole, &loader(&tokens, 16), None, &sgd_one_step(), &mut Silent, &stop).unwrap();
    let four = train::fit(&mut parts, &loader(&tokens, 4), None, &FitOptions { accumulate: 4, ..sgd_one_step() }, &mut Silent, &stop).unwrap();
    assert_eq!((one.steps.len(), four.steps.len()), (1, 1));
    let dl = (one.steps[0].loss - four.steps[0].loss).abs();
    let mut dw: f64 = 0.0;
    for ((name, a), (_, b)) in whole.named_parameters().iter().zip(parts.named_parameters().iter()) {
        let d = (a - b).abs().max().double_value(&[]);
        assert!(d.is_finite(), "{name}");
        dw = dw.max(d);
    }
    eprintln!("accumulated vs whole batch: loss within {dl:.1e}, weights within {dw:.1e}");
    // Measured: loss 6e-7, weights 1.2e-7 (lr 0.5, so gradients within 3e-7).
    assert!(dl <= 5e-6 && dw <= 1e-6, "loss {dl}, weights {dw}");
}

#[test]
fn lora_sft_learns_the_answers_and_saves_merged() {
    let _lock = common::serial();
    let mut model = tiny();
    let config = LoraConfig { r: 8, alpha: 16.0, dropout: 0.0, targets: model.default_lora_targets(), ..Default::default() };
    let changed = model.add_lora(&config).unwrap();
    assert_eq!(changed.len(), 14, "7 projections in each of 2 layers");
    let summary = model.summary();
    assert!(summary.trainable() < summary.total() / 2, "only the LoRA matrices train");
    let data = colours(16);
    let tokens = tokenized(&model, &data);
    let batches = loader(&tokens, 4);
    let before = train::evaluate(&model, &batches).unwrap();
    let opts = FitOptions { lr: 1e-2, epochs: 15, warmup: 0.0, weight_decay: 0.0, ..Default::default() };
    let run = train::fit(&mut model, &batches, Some(&batches), &opts, &mut Silent, &Arc::new(AtomicBool::new(false))).unwrap();
    let after = run.epochs.last().unwrap().val.unwrap();
    eprintln!("LoRA SFT: loss {:.3} -> {:.3}, perplexity {:.1} -> {:.1}", before.loss, after.loss, before.metric("perplexity").unwrap(), after.metric("perplexity").unwrap());
    assert!(after.loss < before.loss * 0.5, "the loss halves at least: {} -> {}", before.loss, after.loss);

    // Saved merged: the same logits without LoRA.
    let out = tempfile::tempdir().unwrap();
    let saved = model.save(&out.path().join("merged")).unwrap();
    let again = CausalModel::load("merged", &saved, Device::Cpu).unwrap();
    let ids = Tensor::from_slice(&tokens.input_ids[0].iter().map(|&i| i as i64).collect::<Vec<_>>()).unsqueeze(0);
    let mask = ids.ones_like();
    let (a, b) = tch::no_grad(|| (model.logits(&ids, &mask), again.logits(&ids, &mask)));
    let d = (a - b).abs().max().double_value(&[]);
    assert!(d <= 1e-5, "merged logits differ by {d}");
    assert!(!again.named_parameters().iter().any(|(n, _)| n.contains("lora")));
}

#[test]
fn a_resumed_sft_run_ends_with_the_weights_of_an_uninterrupted_one() {
    let _lock = common::serial();
    let data = colours(12);
    let out = tempfile::tempdir().unwrap();
    let checkpoints = train::CheckpointOptions { dir: out.path().join("ckpt"), keep: 2 };
    let opts = FitOptions { lr: 5e-3, epochs: 2, warmup: 0.0, schedule: Schedule::Constant, ..Default::default() };
    let stop = Arc::new(AtomicBool::new(false));
    let lora = |m: &mut CausalModel| {
        tch::manual_seed(3);
        let targets = m.default_lora_targets();
        m.add_lora(&LoraConfig { r: 4, alpha: 8.0, dropout: 0.0, targets, ..Default::default() }).unwrap();
    };
    let (mut straight, mut first, mut resumed) = (tiny(), tiny(), tiny());
    lora(&mut straight);
    lora(&mut first);
    lora(&mut resumed);
    let tokens = tokenized(&straight, &data);
    let batches = loader(&tokens, 4);
    train::fit(&mut straight, &batches, None, &opts, &mut Silent, &stop).unwrap();
    // Interrupted in the second epoch (as Ctrl-C does: the stop flag, seen
    // at the next batch); a fresh model resumes from the first epoch's checkpoint.
    struct StopInEpochTwo(Arc<AtomicBool>);
    impl train::TrainObserver for StopInEpochTwo {
        fn on_event(&mut self, event: &train::TrainEvent) {
            if let train::TrainEvent::Step { epoch: 2, step_in_epoch: 1, .. } = event {
                self.0.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
    let interrupt = Arc::new(AtomicBool::new(false));
    let cut = train::fit(&mut first, &batches, None, &FitOptions { checkpoint: Some(checkpoints.clone()), ..opts.clone() }, &mut StopInEpochTwo(interrupt.clone()), &interrupt).unwrap();
    assert!(cut.interrupted && cut.steps.len() == 4, "stopped after the second epoch's first step: {} steps", cut.steps.len());
    train::fit(&mut resumed, &batches, None, &FitOptions { checkpoint: Some(checkpoints.clone()), resume: Some(checkpoints.dir.clone()), ..opts.clone() }, &mut Silent, &stop).unwrap();
    for ((name, a), (_, b)) in straight.named_parameters().iter().zip(resumed.named_parameters().iter()) {
        assert!(a.equal(b), "{name} differs after resuming");
    }
}

/// The loss and its gradients for one batch, from zeroed gradients.
fn loss_and_grads(model: &CausalModel, batch: &tunebook::data::Batch) -> (f64, Vec<Tensor>) {
    for (_, p) in model.named_parameters() {
        let mut g = p.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
    let logits = model.forward(&batch.inputs, false).unwrap();
    let loss = train::Loss::CrossEntropy.compute(&logits, &batch.labels, None, 0.0);
    loss.backward();
    (loss.double_value(&[]), model.named_parameters().iter().map(|(_, p)| p.grad().copy()).collect())
}

#[test]
fn a_packed_batch_gives_the_token_weighted_loss_and_gradients_of_its_examples_alone() {
    let _lock = common::serial();
    let model = tiny();
    let tokens = tokenized(&model, &colours(8));
    let packed = DataLoader::new(tokens.clone(), LoaderOptions { batch_size: 64, packing: true, ..Default::default() }).unwrap();
    let packing = packed.packing.clone().unwrap();
    let lengths: Vec<usize> = tokens.input_ids.iter().map(Vec::len).collect();
    assert!(packing.bins.len() < 8 && packing.bins.iter().any(|b| b.len() > 1), "short examples share rows: {:?} of lengths {lengths:?}", packing.bins);
    assert!(packing.bins.iter().all(|b| b.iter().map(|&i| lengths[i]).sum::<usize>() <= 64), "no row is longer than max_len");
    assert_eq!(packed.len(), 1);
    let batch_rows = packed.batch_indices(0);
    let batch = packed.collate(&batch_rows[0], Device::Cpu, Some(0)).unwrap();
    assert_eq!(batch.size, 8);
    let (packed_loss, packed_grads) = loss_and_grads(&model, &batch);

    // Each example alone, weighted by its label tokens.
    let alone = loader(&tokens, 1);
    let total: usize = tokens.label_tokens(&(0..8).collect::<Vec<_>>());
    let mut loss = 0.0;
    let mut grads: Vec<Tensor> = packed_grads.iter().map(Tensor::zeros_like).collect();
    for i in 0..8 {
        let w = tokens.label_tokens(&[i]) as f64 / total as f64;
        let (l, g) = loss_and_grads(&model, &alone.collate(&[i], Device::Cpu, None).unwrap());
        loss += w * l;
        for (acc, g) in grads.iter_mut().zip(g) {
            *acc += g * w;
        }
    }
    let dl = (packed_loss - loss).abs();
    let dg = packed_grads.iter().zip(&grads).map(|(a, b)| (a - b).abs().max().double_value(&[])).fold(0.0, f64::max);
    eprintln!("packed vs alone: loss {packed_loss:.6} vs {loss:.6} (within {dl:.1e}), gradients within {dg:.1e}");
    assert!(dl <= 1e-5 && dg <= 1e-5, "loss {dl}, gradients {dg}");

    // The same rows attending across examples (one sequence per row) give
    // another loss: the test would see a mask that let examples mix.
    let tunebook::data::Inputs::Text { input_ids, token_type_ids, attention_mask } = &batch.inputs else { unreachable!() };
    let mixed = tunebook::data::Batch {
        inputs: tunebook::data::Inputs::Text { input_ids: input_ids.shallow_clone(), token_type_ids: token_type_ids.shallow_clone(), attention_mask: attention_mask.gt(0).to_kind(tch::Kind::Int64) },
        labels: batch.labels.shallow_clone(),
        size: batch.size,
    };
    let (mixed_loss, _) = loss_and_grads(&model, &mixed);
    assert!((mixed_loss - loss).abs() > 1e-3, "examples that see each other change the loss: {mixed_loss} vs {loss}");
}

#[test]
fn packing_refuses_classifier_data_and_bucketing() {
    let model = tiny();
    let tokens = tokenized(&model, &colours(4));
    let err = DataLoader::new(tokens, LoaderOptions { packing: true, bucket: true, ..Default::default() }).unwrap_err().to_string();
    assert!(err.contains("bucket and packing"), "{err}");
}

#[test]
fn a_script_trains_packed_rows_and_shows_samples_before_training_and_after_each_evaluation() {
    let _lock = common::serial();
    let (mut session, recorded) = common::session();
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/decoders/tiny-llama");
    let script = format!(
        r#"
        let lm = load_model("{}");
        lm.add_lora(#{{ r: 8, alpha: 16, dropout: 0.0 }});
        let rows = [];
        for i in 0..16 {{ rows.push(#{{ messages: [#{{ role: "system", content: "s" }}, #{{ role: "user", content: `t${{i}}` }}, #{{ role: "assistant", content: "red" }}] }}); }}
        let tokens = dataset(rows).tokenize(lm, #{{ max_len: 64 }});
        let train = tokens.loader(#{{ batch: 2, packing: true, shuffle: true }});
        let asked = [[#{{ role: "system", content: "s" }}, #{{ role: "user", content: "t99" }}]];
        let run = fit(lm, train, train, #{{ epochs: 3, lr: 1e-2, warmup: 0.0, eval_every: 2, samples: #{{ prompts: asked, max_new_tokens: 4 }} }});
        [train.len(), run.samples, run.evaluations.len(), generate(lm, asked[0], #{{ max_new_tokens: 4, stream: false }})]
        "#,
        base.display()
    );
    let value = session.eval(&script, "sft.rhai").unwrap_or_else(|e| panic!("{e}"));
    let parts = value.into_array().unwrap();
    let batches = parts[0].as_int().unwrap() as usize;
    // 16 short examples pack into a few rows of 64 tokens; two rows a batch.
    assert!(batches < 8, "packed: {batches} batches of 2 rows for 16 examples");
    let samples: Vec<(i64, String, String)> = parts[1]
        .clone()
        .into_array()
        .unwrap()
        .into_iter()
        .map(|s| {
            let m = s.cast::<rhai::Map>();
            (m["step"].as_int().unwrap(), m["prompt"].clone().into_string().unwrap(), m["text"].clone().into_string().unwrap())
        })
        .collect();
    let evaluations = parts[2].as_int().unwrap() as usize;
    // Before training, after each mid-epoch evaluation, after each epoch.
    assert_eq!(samples.len(), 1 + evaluations + 3, "{samples:?}");
    assert_eq!(samples[0].0, 0);
    assert!(samples.iter().all(|s| s.1 == "t99"), "the prompt shown is the user's message");
    assert!(samples.windows(2).all(|w| w[0].0 <= w[1].0), "in step order");
    let last = &samples.last().unwrap().2;
    assert_eq!(last, &parts[3].clone().into_string().unwrap(), "the last sample is what generate gives after training");
    assert!(last.starts_with("red"), "the model learned the answer: {last:?} (before: {:?})", samples[0].2);
    let shown = recorded.borrow().events.iter().filter(|e| matches!(e, tunebook::train::TrainEvent::Samples(_))).count();
    assert_eq!(shown, samples.len(), "each set of samples was reported as it was made");
}

#[test]
fn lora_sft_trains_in_bf16_and_fp16_autocast_to_about_the_fp32_loss() {
    use tunebook::runtime::precision::Precision;
    let _lock = common::serial();
    let data = colours(16);
    let run_in = |precision| {
        let mut model = tiny();
        // The same LoRA initialization for every precision.
        tch::manual_seed(7);
        let config = LoraConfig { r: 8, alpha: 16.0, dropout: 0.0, targets: model.default_lora_targets(), ..Default::default() };
        model.add_lora(&config).unwrap();
        let batches = loader(&tokenized(&model, &data), 4);
        let opts = FitOptions { lr: 1e-2, epochs: 6, warmup: 0.0, weight_decay: 0.0, seed: Some(3), precision, ..Default::default() };
        let run = train::fit(&mut model, &batches, Some(&batches), &opts, &mut Silent, &Arc::new(AtomicBool::new(false))).unwrap();
        assert!(model.named_parameters().iter().all(|(_, t)| t.kind() == tch::Kind::Float), "{precision:?}: the weights stay fp32");
        run
    };
    let fp32 = run_in(Precision::Fp32);
    let last = |r: &train::TrainRun| r.epochs.last().unwrap().val.unwrap().loss;
    for (precision, first_step_tolerance) in [(Precision::Bf16, 0.02), (Precision::Fp16, 0.005)] {
        let run = run_in(precision);
        // Autocast changed the first forward pass's arithmetic, by little.
        let (a, b) = (fp32.steps[0].loss, run.steps[0].loss);
        eprintln!("{precision:?}: first loss {b} (fp32 {a}), final validation loss {} (fp32 {})", last(&run), last(&fp32));
        assert!(a != b && (a - b).abs() < first_step_tolerance * a, "{precision:?}: first losses fp32 {a}, {b}");
        // And it learns what fp32 learns.
        assert!(last(&run) < 0.6 * run.steps[0].loss, "{precision:?}: validation loss {} from a first loss of {}", last(&run), run.steps[0].loss);
        // Measured 2.0778 (bf16) and 2.0798 (fp16) against fp32's 2.0773 after 6 epochs.
        assert!((last(&run) - last(&fp32)).abs() < 0.02 * last(&fp32).max(0.5), "{precision:?}: final validation loss {} against fp32's {}", last(&run), last(&fp32));
    }
}

#[test]
fn chats_whose_answers_max_len_cut_off_are_refused_instead_of_training_on_nothing() {
    let mut model = tiny();
    // Without a system message the template adds its long default one, and
    // 24 tokens hold no answer.
    let chat = |i: usize| Example::Chat(vec![Message { role: "user".into(), content: format!("q{i}") }, Message { role: "assistant".into(), content: "red".into() }]);
    let data = ChatDataset { name: "cut".into(), examples: (0..4).map(chat).collect() };
    let (tokens, report) = tokenize_examples(&data, &model, SftOptions { max_len: 24, train_on: TrainOn::Answers, drop_long: false }).unwrap();
    assert_eq!(report.without_answer, 4);
    let tokens = Arc::new(tokens);
    let before: Vec<Tensor> = model.named_parameters().iter().map(|(_, t)| t.copy()).collect();
    let err = train::fit(&mut model, &loader(&tokens, 2), None, &FitOptions { max_steps: Some(2), ..FitOptions::default() }, &mut Silent, &Arc::new(AtomicBool::new(false))).unwrap_err().to_string();
    assert!(err.contains("no token to learn") && err.contains("raise max_len") && err.contains("cut"), "{err}");
    let err = train::evaluate(&model, &loader(&tokens, 2)).unwrap_err().to_string();
    assert!(err.contains("no token to learn"), "{err}");
    assert!(model.named_parameters().iter().zip(&before).all(|((_, a), b)| a.equal(b)), "nothing changed");
    // With a short system message the answers fit, and it trains.
    let roomy = loader(&tokenized(&model, &colours(4)), 2);
    let run = train::fit(&mut model, &roomy, None, &FitOptions { max_steps: Some(1), ..FitOptions::default() }, &mut Silent, &Arc::new(AtomicBool::new(false))).unwrap();
    assert!(run.steps[0].loss > 0.0);
}
