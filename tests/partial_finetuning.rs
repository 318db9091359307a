//! Partial fine-tuning on the shipped MiniLM: every way of freezing leaves
//! frozen tensors bit-identical, without gradients, optimizer state or
//! weight decay; LoRA merges without changing outputs; an adapter saved with
//! its head loads back into a fresh base model.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tch::{Device, Tensor};
use tunebook::data::{DataLoader, LoaderOptions, TextDataset, TokenizedDataset};
use tunebook::model::{Learner, LoadOptions, LoraConfig, TextModel, Pooling};
use tunebook::train::{self, FitOptions, LayerRates, Schedule, TrainEvent, TrainObserver, Unfreezing};

fn minilm(pooling: Pooling) -> TextModel {
    tch::manual_seed(0);
    common::load_minilm(&["rotten", "fresh"], pooling)
}

fn loader(model: &TextModel, rows: usize) -> DataLoader {
    let data = TextDataset::named("rotten_tomatoes", &tunebook::runtime::cache_dir()).unwrap().take(rows);
    let tokens = TokenizedDataset::new(&data, &model.tokenizer, 16).unwrap();
    DataLoader::new(std::sync::Arc::new(tokens), LoaderOptions { batch_size: 16, shuffle: false, seed: 0, drop_last: false, bucket: false, packing: false }).unwrap()
}

fn snapshot(model: &TextModel) -> HashMap<String, Tensor> {
    model.named_parameters().into_iter().map(|(n, t)| (n, t.detach().copy())).collect()
}

/// Records every event.
#[derive(Default)]
struct Events(Vec<TrainEvent>);

impl TrainObserver for Events {
    fn on_event(&mut self, e: &TrainEvent) {
        self.0.push(e.clone());
    }
}

fn options(epochs: usize) -> FitOptions {
    // A large rate and weight decay: any update or decay of a frozen tensor would show.
    FitOptions { lr: 1e-3, weight_decay: 0.1, schedule: Schedule::Constant, warmup: 0.0, epochs, ..FitOptions::default() }
}

fn fit(model: &mut TextModel, opts: &FitOptions) -> (train::TrainRun, Vec<TrainEvent>) {
    let data = loader(model, 48);
    let mut events = Events::default();
    let run = train::fit(model, &data, None, opts, &mut events, &Arc::new(AtomicBool::new(false))).unwrap_or_else(|e| panic!("{e:#}"));
    (run, events.0)
}

/// Trains 3 steps after `freeze` and checks that exactly the trainable
/// tensors moved, that frozen ones have no gradient, and that the optimizer
/// holds state for the trainable ones only.
fn check_mode(label: &str, freeze: impl FnOnce(&mut TextModel)) {
    let mut model = minilm(Pooling::Mean);
    freeze(&mut model);
    let before = snapshot(&model);
    let trainable: Vec<(String, Tensor)> = model.named_parameters().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    let trainable_names: std::collections::HashSet<String> = trainable.iter().map(|(n, _)| n.clone()).collect();
    let trainable_numel: i64 = trainable.iter().map(|(_, t)| t.numel() as i64).sum();
    assert!(!trainable.is_empty() && trainable.len() < before.len(), "{label}: the mode should freeze some but not all");
    let (run, _) = fit(&mut model, &options(1));
    assert_eq!(run.trainable_params, trainable_numel, "{label}: the run reports the trainable count");
    assert_eq!(run.optimizer_state_bytes, 2 * 4 * trainable_numel, "{label}: optimizer state exists for trainable tensors only");
    for (name, t) in model.named_parameters() {
        let unchanged = t.equal(&before[&name]);
        if trainable_names.contains(&name) {
            assert!(!unchanged, "{label}: trainable {name} did not change");
        } else {
            assert!(unchanged, "{label}: frozen {name} changed");
            assert!(!t.grad().defined(), "{label}: frozen {name} has a gradient");
        }
    }
}

#[test]
fn every_freezing_mode_keeps_frozen_tensors_bit_identical() {
    let _serial = common::serial();
    check_mode("module path", |m| {
        m.set_trainable("embeddings", false).unwrap();
    });
    check_mode("layer range", |m| {
        m.set_trainable("encoder.layer.0-3", false).unwrap();
    });
    check_mode("glob", |m| {
        // query, key, value, output.dense and output.LayerNorm, weight and bias, in 6 layers.
        assert_eq!(m.set_trainable("encoder.layer.*.attention", false).unwrap(), 6 * 10);
    });
    check_mode("kind norm", |m| {
        m.set_trainable("norm", false).unwrap();
    });
    check_mode("kind bias", |m| {
        m.set_trainable("bias", false).unwrap();
    });
    check_mode("train_only head", |m| {
        assert_eq!(m.train_only(&["head".into()]).unwrap(), 2);
    });
    check_mode("trainable_layers(2)", |m| {
        m.trainable_layers(2).unwrap();
        assert!(m.named_parameters().iter().all(|(n, t)| t.requires_grad() == (n.starts_with("encoder.layer.4.") || n.starts_with("encoder.layer.5.") || n.starts_with("classifier."))));
    });
    check_mode("trainable_layers(-2)", |m| {
        m.trainable_layers(-2).unwrap();
        assert!(m.named_parameters().iter().all(|(n, t)| t.requires_grad() == (n.starts_with("encoder.layer.0.") || n.starts_with("encoder.layer.1.") || n.starts_with("classifier."))));
    });
    check_mode("freeze_all then unfreeze", |m| {
        m.set_all_trainable(false);
        m.set_trainable("classifier, encoder.layer.5.output", true).unwrap();
    });
    check_mode("LoRA", |m| {
        m.add_lora(&LoraConfig { r: 4, alpha: 8.0, dropout: 0.0, targets: vec!["query".into(), "value".into()], ..Default::default() }).unwrap();
    });
    check_mode("bottleneck adapters", |m| {
        m.add_adapters(16).unwrap();
    });
}

#[test]
fn a_selector_that_names_nothing_lists_the_closest_module_names() {
    let _serial = common::serial();
    let mut model = minilm(Pooling::Mean);
    let err = model.set_trainable("encoder.layers.3", false).unwrap_err().to_string();
    assert!(err.contains("'encoder.layers.3' names no module"), "{err}");
    assert!(err.contains("encoder.layer.3"), "closest names first: {err}");
    let err = model.trainable_layers(7).unwrap_err().to_string();
    assert!(err.contains("has 6 layers"), "{err}");
    // A failing train_only changes nothing.
    assert!(model.train_only(&["head".into(), "nonsense".into()]).is_err());
    assert!(model.named_parameters().iter().filter(|(n, _)| !n.starts_with("pooler.")).all(|(_, t)| t.requires_grad()));
}

#[test]
fn a_model_with_everything_frozen_is_refused_before_training() {
    let _serial = common::serial();
    let mut model = minilm(Pooling::Mean);
    model.set_all_trainable(false);
    let data = loader(&model, 16);
    let err = train::fit(&mut model, &data, None, &options(1), &mut Events::default(), &Arc::new(AtomicBool::new(false))).unwrap_err().to_string();
    assert!(err.contains("every parameter is frozen"), "{err}");
}

#[test]
fn gradual_unfreezing_opens_one_group_per_epoch_from_the_top_and_gives_the_freeze_back() {
    let _serial = common::serial();
    let mut model = minilm(Pooling::Mean);
    model.set_trainable("embeddings", false).unwrap();
    let before = snapshot(&model);
    let (_, events) = fit(&mut model, &FitOptions { unfreezing: Some(Unfreezing::Gradual { every: 1 }), ..options(3) });
    let opened: Vec<(usize, Vec<String>)> = events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Unfrozen { epoch, groups, .. } => Some((*epoch, groups.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        opened,
        vec![
            (1, vec!["head".to_string()]),
            (2, vec!["head".into(), "encoder.layer.5".into()]),
            (3, vec!["head".into(), "encoder.layer.5".into(), "encoder.layer.4".into()]),
        ]
    );
    for (name, t) in model.named_parameters() {
        let moved = !t.equal(&before[&name]);
        let should_move = name.starts_with("classifier.") || name.starts_with("encoder.layer.5.") || name.starts_with("encoder.layer.4.");
        assert_eq!(moved, should_move, "{name}");
    }
    // The user's own freeze is back: everything but the embeddings (and the unused pooler) trains.
    assert!(model.named_parameters().iter().all(|(n, t)| t.requires_grad() != (n.starts_with("embeddings.") || n.starts_with("pooler."))));
}

#[test]
fn head_first_trains_the_head_alone_then_everything() {
    let _serial = common::serial();
    let mut model = minilm(Pooling::Mean);
    let (_, events) = fit(&mut model, &FitOptions { unfreezing: Some(Unfreezing::HeadFirst(1)), ..options(2) });
    let counts: Vec<i64> = events.iter().filter_map(|e| if let TrainEvent::Unfrozen { trainable_params, .. } = e { Some(*trainable_params) } else { None }).collect();
    assert_eq!(counts.len(), 2);
    assert_eq!(counts[0], 384 * 2 + 2, "the head alone first");
    assert_eq!(counts[1], model.summary().trainable(), "then everything");
}

#[test]
fn layer_decay_and_explicit_groups_set_each_groups_rate() {
    let _serial = common::serial();
    let mut model = minilm(Pooling::Mean);
    let rates = LayerRates { decay: Some(0.5), groups: vec![("embeddings".into(), 0.0)] };
    let before = snapshot(&model);
    let (_, events) = fit(&mut model, &FitOptions { layer_rates: rates, ..options(1) });
    let Some(TrainEvent::Start { lr_groups, .. }) = events.first() else { panic!("no start event") };
    assert_eq!(lr_groups[0], ("head".to_string(), 1e-3));
    assert_eq!(lr_groups[1], ("encoder.layer.5".to_string(), 5e-4));
    assert_eq!(lr_groups[6], ("encoder.layer.0".to_string(), 1e-3 * 0.5f64.powi(6)));
    assert_eq!(lr_groups[7], ("embeddings".to_string(), 0.0));
    // A zero rate leaves the embeddings where they were; the layers moved.
    for (name, t) in model.named_parameters() {
        if name.starts_with("embeddings.") {
            assert!(t.equal(&before[&name]), "{name} moved at rate 0");
        }
    }
    assert!(!model.named_parameters().iter().find(|(n, _)| n == "encoder.layer.0.attention.self.query.weight").unwrap().1.equal(&before["encoder.layer.0.attention.self.query.weight"]));
}

fn batch_logits(model: &TextModel) -> Tensor {
    let data = loader(model, 16);
    let batch = data.collate(&(0..16).collect::<Vec<_>>(), Device::Cpu, None).unwrap();
    tch::no_grad(|| tunebook::model::Learner::forward(model, &batch.inputs, false).unwrap())
}

#[test]
fn lora_trains_a_small_share_and_merges_without_changing_outputs() {
    let _serial = common::serial();
    let mut model = minilm(Pooling::Pooler);
    let layers = model.add_lora(&LoraConfig { r: 8, alpha: 16.0, dropout: 0.1, targets: model.default_lora_targets(), ..Default::default() }).unwrap();
    assert_eq!(layers.len(), 12, "query and value of 6 layers");
    let s = model.summary();
    // LoRA (2 x 8 x 384 per layer, 12 layers) + pooler + classifier.
    assert_eq!(s.trainable(), 12 * 2 * 8 * 384 + (384 * 384 + 384) + (384 * 2 + 2));
    let before = batch_logits(&model);
    fit(&mut model, &options(1));
    let unmerged = batch_logits(&model);
    assert!((&unmerged - &before).abs().max().double_value(&[]) > 1e-4, "training moved the outputs");

    // save() folds the updates in; the saved model is a plain HF model with the same outputs.
    let out = tempfile::tempdir().unwrap();
    let saved = model.save(&out.path().join("merged")).unwrap();
    let names: Vec<String> = Tensor::read_safetensors(saved.join("model.safetensors")).unwrap().into_iter().map(|(n, _)| n).collect();
    assert!(!names.iter().any(|n| n.contains("lora")), "the export has no LoRA tensors");
    let reloaded = TextModel::load("merged", &saved, &LoadOptions { labels: None, pooling: Pooling::Pooler, task: None, device: Device::Cpu, dropout: None }).unwrap();
    let diff = (&batch_logits(&reloaded) - &unmerged).abs().max().double_value(&[]);
    assert!(diff <= 1e-5, "saved-merged logits differ by {diff}");

    assert_eq!(model.merge_lora().unwrap(), 12);
    assert!(!model.named_parameters().iter().any(|(n, _)| n.contains("lora")));
    let diff = (&batch_logits(&model) - &unmerged).abs().max().double_value(&[]);
    eprintln!("merged vs unmerged logits: {diff:.2e}");
    assert!(diff <= 1e-5, "merged logits differ by {diff}");
}

#[test]
fn an_adapter_saved_with_its_head_loads_into_a_fresh_base_model() {
    let _serial = common::serial();
    for method in ["lora", "adapters"] {
        let mut model = minilm(Pooling::Mean);
        match method {
            "lora" => drop(model.add_lora(&LoraConfig { r: 4, alpha: 8.0, dropout: 0.0, targets: vec!["query".into(), "value".into(), "output.dense".into()], ..Default::default() }).unwrap()),
            _ => model.add_adapters(16).unwrap(),
        }
        fit(&mut model, &options(1));
        let trained = batch_logits(&model);
        let out = tempfile::tempdir().unwrap();
        let dir = model.save_adapter(&out.path().join("adapter")).unwrap();
        let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("adapter_config.json")).unwrap()).unwrap();
        let names: Vec<String> = Tensor::read_safetensors(dir.join("adapter_model.safetensors")).unwrap().into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"base_model.model.classifier.weight".to_string()), "{method}: the head is saved: {names:?}");
        assert!(names.iter().all(|n| n.starts_with("base_model.model.")), "{names:?}");
        let adapter_bytes = std::fs::metadata(dir.join("adapter_model.safetensors")).unwrap().len();
        let full_bytes = std::fs::metadata(model.source.join("model.safetensors")).unwrap().len();
        assert!(adapter_bytes * 10 < full_bytes, "{method}: the adapter file ({adapter_bytes} bytes) is a small part of the model ({full_bytes})");
        if method == "lora" {
            assert_eq!(config["peft_type"], "LORA");
            assert_eq!(config["r"], 4);
            assert!(names.contains(&"base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight".to_string()));
        } else {
            // Houlsby adapters train the LayerNorms too; those are saved as well.
            assert!(names.iter().any(|n| n.contains("LayerNorm")), "{names:?}");
        }

        // A fresh base model with a fresh (random) head computes something else until the adapter loads.
        let mut fresh = minilm(Pooling::Mean);
        assert!((&batch_logits(&fresh) - &trained).abs().max().double_value(&[]) > 1e-4);
        fresh.load_adapter(&dir).unwrap();
        let diff = (&batch_logits(&fresh) - &trained).abs().max().double_value(&[]);
        assert!(diff <= 1e-6, "{method}: reloaded adapter logits differ by {diff}");
    }
}

#[test]
fn adapters_cannot_be_saved_as_a_plain_model_and_say_what_to_do() {
    let _serial = common::serial();
    let mut model = minilm(Pooling::Mean);
    model.add_adapters(8).unwrap();
    let err = model.save(&tempfile::tempdir().unwrap().path().join("m")).unwrap_err().to_string();
    assert!(err.contains("save_adapter"), "{err}");
    let err = model.add_lora(&LoraConfig { r: 4, alpha: 8.0, dropout: 0.0, targets: vec!["query".into()], ..Default::default() }).unwrap_err().to_string();
    assert!(err.contains("already has bottleneck adapters"), "{err}");
    let mut model = minilm(Pooling::Mean);
    let err = model.add_lora(&LoraConfig { r: 4, alpha: 8.0, dropout: 0.0, targets: vec!["q_proj".into()], ..Default::default() }).unwrap_err().to_string();
    assert!(err.contains("valid: ") && err.contains("query"), "{err}");
}

#[test]
fn dropout_acts_in_training_only() {
    let _serial = common::serial();
    let model = minilm(Pooling::Mean);
    let data = loader(&model, 8);
    let b = data.collate(&(0..8).collect::<Vec<_>>(), Device::Cpu, None).unwrap();
    let run = |train: bool| tch::no_grad(|| tunebook::model::Learner::forward(&model, &b.inputs, train).unwrap());
    assert!(run(false).equal(&run(false)), "evaluation is deterministic");
    assert!(!run(true).equal(&run(true)), "training applies dropout");
}

mod common;

#[test]
fn the_comparison_example_runs_and_prints_its_table() {
    let _serial = common::serial();
    // The example itself, on a sample small enough for CI.
    let path = common::repo().join("examples/compare_partial_finetuning.rhai");
    let script = std::fs::read_to_string(&path).unwrap();
    let sizes = [("TRAIN_ROWS".to_string(), "32".to_string()), ("VAL_ROWS".into(), "32".into()), ("EPOCHS".into(), "1".into())];
    let small = tunebook::script::overrides::apply(&script, &sizes).unwrap();
    let (mut session, recorded) = common::session();
    let _ = session.eval(&small, "compare_partial_finetuning.rhai").unwrap_or_else(|e| panic!("{e}"));
    let printed = recorded.borrow().printed.join("\n");
    let table = printed.rsplit_once("method").map(|(_, t)| t).unwrap_or_else(|| panic!("no table in:\n{printed}"));
    for method in ["full", "top-2 layers", "head only", "LoRA r=8"] {
        assert!(table.contains(method), "{method} missing from the table:\n{table}");
    }
    // Full fine-tuning trains everything but the pooler, which mean pooling does not use.
    assert!(table.contains("99.349"), "{table}");
    assert!(table.contains("5e-5"), "small rates in scientific notation: {table}");
    assert!(printed.contains("LoRA r=8 alpha=16 on 12 layers"), "{printed}");
}

#[test]
fn script_freezing_reports_mistakes_with_the_valid_names() {
    let _serial = common::serial();
    let (mut session, _) = common::session();
    let err = session
        .eval("let m = load_model(\"minilm\", #{ labels: 2, pooling: \"mean\" });\nm.freeze(\"encoder.layer.*.atention\");", "freeze.rhai")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("freeze.rhai:2:"), "{err}");
    assert!(err.contains("closest names") && err.contains("glob"), "{err}");
    let value = session
        .eval(
            r#"let m = load_model("minilm", #{ labels: 2, pooling: "mean" });
               m.freeze(["embeddings", "encoder.layer.0-2"]);
               let frozen = m.parameters().filter(|p| !p.trainable).len();
               let groups = m.layer_groups();
               m.train_only("head");
               #{ frozen: frozen, groups: groups, trainable: m.trainable_params }"#,
            "ok.rhai",
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .cast::<rhai::Map>();
    // 5 embedding tensors, 16 per layer in 3 layers, and the unused pooler's 2.
    assert_eq!(value["frozen"].as_int().unwrap(), 5 + 3 * 16 + 2);
    assert_eq!(value["trainable"].as_int().unwrap(), 384 * 2 + 2);
    let groups: Vec<String> = value["groups"].clone().into_array().unwrap().into_iter().map(|g| g.into_string().unwrap()).collect();
    assert_eq!(groups.first().map(String::as_str), Some("head"));
    assert_eq!(groups.last().map(String::as_str), Some("embeddings"));
}

#[test]
fn two_heads_share_one_frozen_backbone_each_trained_on_its_own_task() {
    let _serial = common::serial();
    let (mut session, _) = common::session();
    let out = tempfile::tempdir().unwrap();
    let script = format!(
        r#"
        let model = load_model("minilm", #{{ labels: ["rotten", "fresh"], pooling: "mean" }});
        let backbone_before = embed(model, ["a shared backbone"]);
        model.train_only("head");
        let reviews = load_dataset("rotten_tomatoes").clean().split(#{{ val: 0.2, seed: 1 }});
        let rt = reviews.train.take(320).tokenize(model, #{{ max_len: 32 }}).loader(#{{ batch: 32, shuffle: true }});
        let rv = reviews.val.take(200).tokenize(model, #{{ max_len: 32 }}).loader(#{{ batch: 100 }});
        let sentiment = fit(model, rt, rv, #{{ lr: 3e-3, epochs: 3, warmup: 0.0 }});
        let sentiment_after = evaluate(model, rv);

        model.add_head("topic", #{{ labels: 5 }});
        model.use_head("topic");
        model.train_only("head");
        let trainable_topic = model.trainable_params;
        let news = load_dataset("bbc_news").split(#{{ val: 0.2, seed: 1 }});
        let nt = news.train.take(320).tokenize(model, #{{ max_len: 64 }}).loader(#{{ batch: 32, shuffle: true }});
        let nv = news.val.take(200).tokenize(model, #{{ max_len: 64 }}).loader(#{{ batch: 100 }});
        let topic = fit(model, nt, nv, #{{ lr: 3e-3, epochs: 3, warmup: 0.0 }});

        let texts = ["A dull, lifeless mess.", "Shares fell as the bank reported lower profits."];
        let by_topic = predict(model, texts);
        let by_sentiment = predict(model, texts, #{{ head: "main" }});
        model.use_head("main");
        let sentiment_again = evaluate(model, rv);
        let saved = model.save("{dir}");
        let reloaded = load_model(saved);
        #{{
            sentiment: sentiment.best_val_accuracy, topic: topic.best_val_accuracy, trainable_topic: trainable_topic,
            heads: model.heads, reloaded_heads: reloaded.heads, topic_labels: predict(reloaded, texts, #{{ head: "topic" }}),
            by_topic: by_topic, by_sentiment: by_sentiment,
            same_backbone: embed(model, ["a shared backbone"]) == backbone_before,
            sentiment_kept: sentiment_again.loss == sentiment_after.loss,
            reloaded_same: predict(reloaded, texts) == by_sentiment,
        }}
        "#,
        dir = out.path().join("multitask").display()
    );
    let r = session.eval(&script, "multitask.rhai").unwrap_or_else(|e| panic!("{e}")).cast::<rhai::Map>();
    let f = |k: &str| r[k].as_float().unwrap_or_else(|_| panic!("{k}: {:?}", r[k]));
    eprintln!("sentiment head: {:.3}, topic head: {:.3}", f("sentiment"), f("topic"));
    assert!(f("sentiment") > 0.6, "the sentiment head learned: {}", f("sentiment"));
    assert!(f("topic") > 0.6, "the topic head learned (5 classes, chance 0.2): {}", f("topic"));
    assert_eq!(r["trainable_topic"].as_int().unwrap(), 384 * 5 + 5, "only the topic head trains; the parked sentiment head is not counted");
    assert!(r["same_backbone"].as_bool().unwrap(), "the shared backbone stayed frozen through both runs");
    assert!(r["sentiment_kept"].as_bool().unwrap(), "training the topic head left the sentiment head as it was");
    assert!(r["reloaded_same"].as_bool().unwrap(), "the saved model predicts the same");
    let label = |k: &str, i: usize| r[k].clone().into_array().unwrap()[i].clone().cast::<rhai::Map>()["label"].clone().into_string().unwrap();
    assert!(["business", "entertainment", "politics", "sports", "tech"].contains(&label("by_topic", 1).as_str()));
    assert_eq!(label("by_topic", 1), "business", "a business headline gets the business topic");
    assert!(["rotten", "fresh"].contains(&label("by_sentiment", 0).as_str()));
    assert_eq!(label("topic_labels", 1), label("by_topic", 1));
    let heads: Vec<String> = r["reloaded_heads"].clone().into_array().unwrap().into_iter().map(|h| h.into_string().unwrap()).collect();
    assert_eq!(heads, ["main", "topic"]);
}

#[test]
fn the_freeze_chart_draws_trainable_and_frozen_per_layer() {
    let _serial = common::serial();
    let mut model = minilm(Pooling::Mean);
    model.trainable_layers(2).unwrap();
    let chart = tunebook::plot::freeze_chart(&model.summary());
    let svg = chart.svg().unwrap();
    for text in ["trainable", "frozen", "embeddings", "layer 0", "layer 5", "classifier", "parameters (millions)", "(15.6%)"] {
        assert!(svg.contains(text), "the SVG lacks {text:?}");
    }
    // Two bars per module (trainable on frozen): 9 rows (embeddings, 6 layers, pooler, classifier).
    assert_eq!(model.summary().rows.len(), 9);
    assert!(svg.matches("<rect").count() >= 18, "stacked bars");
    let decoder = png::Decoder::new(std::io::Cursor::new(chart.png().unwrap()));
    let info = decoder.read_info().unwrap().info().clone();
    assert_eq!((info.width, info.height), (600, 300));
}
