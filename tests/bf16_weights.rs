//! `weights: "bf16"`: the blocks' weight matrices and the embedding tables
//! are stored in bf16 (half their memory) while the activations stay fp32,
//! so a bf16-stored model computes exactly what an fp32 model with the same
//! rounded weights computes; training gives fp32 back to what it trains and
//! leaves the frozen part in bf16, bit for bit.

mod common;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tch::{Device, Kind, Tensor};
use tunebook::data::{DataLoader, LoaderOptions, TextDataset, TokenizedDataset};
use tunebook::model::layers::LoraConfig;
use tunebook::model::{store_weights_in_bf16, CausalModel, Learner, LoadOptions, Pooling, TextModel};
use tunebook::runtime::precision::Precision;
use tunebook::train::{self, FitOptions, Schedule, Silent, TrainRun};

fn tiny_bert() -> TextModel {
    let dir = common::repo().join("tests/fixtures/tiny-bert");
    tch::manual_seed(0);
    TextModel::load("tiny", &dir, &LoadOptions { labels: Some(vec!["bad".into(), "good".into()]), pooling: Pooling::Mean, task: None, device: Device::Cpu, dropout: None }).unwrap()
}

fn tiny_decoder(name: &str) -> CausalModel {
    CausalModel::load("tiny", &common::repo().join("tests/fixtures/decoders").join(name), Device::Cpu).unwrap()
}

/// Rounds the parameters `names` to bf16 and back, in place: the fp32
/// model that a bf16-stored one must compute exactly as.
fn round_through_bf16(model: &dyn Learner, names: &[String]) {
    for (name, mut t) in model.named_parameters() {
        if names.contains(&name) {
            tch::no_grad(|| t.copy_(&t.to_kind(Kind::BFloat16).to_kind(Kind::Float)));
        }
    }
}

fn kinds(model: &dyn Learner) -> HashMap<String, Kind> {
    model.named_parameters().into_iter().map(|(n, t)| (n, t.kind())).collect()
}

fn largest_difference(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Float) - b.to_kind(Kind::Float)).abs().max().double_value(&[])
}

fn reviews(model: &TextModel) -> DataLoader {
    let words = ["the film is good", "a great story", "fun and short", "the plot is dull", "bad actor", "long and dull"];
    let pairs: Vec<(String, String)> = (0..24).map(|i| (format!("{} {}", words[i % 6], words[(i * 5) % 6]), if i % 6 < 3 { "good" } else { "bad" }.to_string())).collect();
    let tokens = TokenizedDataset::new(&TextDataset::from_pairs("reviews", &pairs).unwrap(), &model.tokenizer, 16).unwrap();
    DataLoader::new(Arc::new(tokens), LoaderOptions { batch_size: 8, shuffle: true, seed: 3, drop_last: false, bucket: false, packing: false }).unwrap()
}

fn three_steps(model: &mut dyn Learner, data: &DataLoader) -> TrainRun {
    let opts = FitOptions { lr: 1e-2, max_steps: Some(3), warmup: 0.0, schedule: Schedule::Constant, seed: Some(5), ..FitOptions::default() };
    train::fit(model, data, None, &opts, &mut Silent, &Arc::new(AtomicBool::new(false))).unwrap_or_else(|e| panic!("{e:#}"))
}

fn loss_difference(a: &TrainRun, b: &TrainRun) -> f64 {
    assert_eq!(a.steps.len(), b.steps.len());
    a.steps.iter().zip(&b.steps).map(|(x, y)| (x.loss - y.loss).abs()).fold(0.0, f64::max)
}

#[test]
fn an_encoder_stores_its_matrices_in_bf16_and_computes_as_fp32_with_rounded_weights() {
    let _serial = common::serial();
    let (stored, rounded, full) = (tiny_bert(), tiny_bert(), tiny_bert());
    let names = stored.bf16_storable();
    let fp32_bytes = stored.summary().storage.bytes;
    let saved = store_weights_in_bf16(&stored).unwrap();
    round_through_bf16(&rounded, &names);

    // The matrices of the blocks and the embedding tables, nothing else.
    let kinds = kinds(&stored);
    for (name, kind) in &kinds {
        let want = if names.contains(name) { Kind::BFloat16 } else { Kind::Float };
        assert_eq!(*kind, want, "{name}");
    }
    assert!(names.iter().any(|n| n.contains("word_embeddings")) && names.iter().any(|n| n.contains("attention.self.query.weight")), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("LayerNorm") || n.ends_with(".bias") || n.starts_with("heads.") || n.contains("classifier")), "{names:?}");
    let storage = stored.summary().storage;
    assert_eq!(storage.bytes, fp32_bytes - saved as i64);
    // The tiny fixture is mostly matrices: about half its bytes.
    assert!((storage.bytes as f64) < 0.55 * fp32_bytes as f64, "{} of {fp32_bytes} bytes", storage.bytes);
    assert!(stored.summary().to_string().contains("stored in bf16"), "{}", stored.summary());

    let data = reviews(&stored);
    let batch = data.collate(&[0, 1, 2, 3, 4, 5], Device::Cpu, None).unwrap();
    let logits = |m: &TextModel, precision: Precision| tch::no_grad(|| precision.run(Device::Cpu, || m.forward(&batch.inputs, false).unwrap()).to_kind(Kind::Float));
    let (a, b, c) = (logits(&stored, Precision::Fp32), logits(&rounded, Precision::Fp32), logits(&full, Precision::Fp32));
    assert_eq!(a.kind(), Kind::Float);
    // Measured 0 (the same fp32 products of the same rounded weights).
    assert!(largest_difference(&a, &b) <= 1e-6, "bf16-stored vs rounded fp32: {}", largest_difference(&a, &b));
    let rounding = largest_difference(&a, &c);
    eprintln!("bf16-stored vs fp32 weights: logits differ by {rounding:e}");
    // Measured 3.3e-4.
    assert!(rounding > 0.0 && rounding < 5e-3, "the weights' rounding moves the logits a little: {rounding}");
    // Under bf16 autocast too.
    let (a16, b16) = (logits(&stored, Precision::Bf16), logits(&rounded, Precision::Bf16));
    assert!(largest_difference(&a16, &b16) <= 1e-6, "under autocast: {}", largest_difference(&a16, &b16));
}

#[test]
fn language_models_store_the_tied_table_and_head_and_generate_the_same() {
    let _serial = common::serial();
    for name in ["tiny-llama", "tiny-llama-tied", "tiny-gpt2"] {
        let (stored, rounded) = (tiny_decoder(name), tiny_decoder(name));
        let names = stored.bf16_storable();
        store_weights_in_bf16(&stored).unwrap();
        round_through_bf16(&rounded, &names);
        assert!(names.iter().any(|n| n.ends_with("embed_tokens.weight") || n.ends_with("wte.weight")), "{name}: {names:?}");
        assert!(names.iter().any(|n| n.contains("mlp")), "{name}: {names:?}");
        let ids = Tensor::from_slice(&[3i64, 7, 11, 5, 2, 9]).view([1, 6]);
        let mask = Tensor::ones([1, 6], (Kind::Int64, Device::Cpu));
        let (a, b) = tch::no_grad(|| (stored.logits(&ids, &mask), rounded.logits(&ids, &mask)));
        assert!(largest_difference(&a, &b) <= 1e-5, "{name}: {}", largest_difference(&a, &b));
        let prompts = vec![vec![3i64, 7, 11], vec![5, 2]];
        let opts = tunebook::inference::GenerateOptions { max_new_tokens: 6, ..Default::default() };
        let never = || false;
        let gen = |m: &CausalModel, o: &tunebook::inference::GenerateOptions| tunebook::inference::generate(m, &prompts, o, &mut |_, _| {}, &never).unwrap().into_iter().map(|g| g.ids).collect::<Vec<_>>();
        assert_eq!(gen(&stored, &opts), gen(&rounded, &opts), "{name}: greedy tokens");
        // And under autocast, where the stored bf16 weights are used as they are.
        let bf16 = tunebook::inference::GenerateOptions { precision: Precision::Bf16, ..opts.clone() };
        let tokens = gen(&stored, &bf16);
        assert!(tokens.iter().all(|t| !t.is_empty()), "{name}: {tokens:?}");
    }
}

#[test]
fn lora_on_bf16_weights_trains_its_update_in_fp32_and_leaves_the_base_untouched() {
    use tunebook::data::chat::tokenize_examples;
    use tunebook::data::{ChatDataset, Example, Message, SftOptions, TrainOn};
    let _serial = common::serial();
    let with_lora = |bf16: bool| {
        let model = tiny_decoder("tiny-llama");
        let names = model.bf16_storable();
        if bf16 {
            store_weights_in_bf16(&model).unwrap();
        } else {
            round_through_bf16(&model, &names);
        }
        let mut model = model;
        tch::manual_seed(7);
        let config = LoraConfig { r: 4, alpha: 8.0, dropout: 0.0, targets: model.default_lora_targets(), ..Default::default() };
        model.add_lora(&config).unwrap();
        model
    };
    let (mut stored, mut rounded) = (with_lora(true), with_lora(false));
    let before: HashMap<String, Tensor> = stored.named_parameters().into_iter().map(|(n, t)| (n, t.copy())).collect();
    let chat = |i: usize| Example::Chat(vec![Message { role: "system".into(), content: "s".into() }, Message { role: "user".into(), content: format!("q{i}") }, Message { role: "assistant".into(), content: ["red", "blue"][i % 2].into() }]);
    let data = ChatDataset { name: "colours".into(), examples: (0..8).map(chat).collect() };
    let tokens = tokenize_examples(&data, &stored, SftOptions { max_len: 64, train_on: TrainOn::Answers, drop_long: false }).unwrap().0;
    let loader = DataLoader::new(Arc::new(tokens), LoaderOptions { batch_size: 4, shuffle: false, seed: 0, drop_last: false, bucket: false, packing: false }).unwrap();
    let a = three_steps(&mut stored, &loader);
    let b = three_steps(&mut rounded, &loader);
    let losses = loss_difference(&a, &b);
    eprintln!("LoRA on bf16-stored vs rounded fp32 weights: losses differ by {losses:e}");
    assert!(losses <= 1e-5, "losses differ by {losses}");
    assert!(a.steps[2].loss < a.steps[0].loss, "it learned: {:?}", a.steps.iter().map(|s| s.loss).collect::<Vec<_>>());
    for (name, t) in stored.named_parameters() {
        if LoraConfig::is_lora_variable(&name) {
            assert_eq!(t.kind(), Kind::Float, "{name}");
        } else {
            assert_eq!(largest_difference(&t, &before[&name]), 0.0, "{name}: the frozen base did not move");
            assert_eq!(t.kind(), before[&name].kind(), "{name}: the frozen base kept its kind");
        }
    }
    assert!(stored.summary().storage.bf16 > 0);
}

#[test]
fn partial_fine_tuning_gives_the_trained_layer_fp32_and_keeps_the_frozen_ones_bf16() {
    let _serial = common::serial();
    let (mut stored, mut rounded) = (tiny_bert(), tiny_bert());
    let names = stored.bf16_storable();
    store_weights_in_bf16(&stored).unwrap();
    round_through_bf16(&rounded, &names);
    stored.trainable_layers(1).unwrap();
    rounded.trainable_layers(1).unwrap();
    let before: HashMap<String, Tensor> = stored.named_parameters().into_iter().map(|(n, t)| (n, t.copy())).collect();
    let data = reviews(&stored);
    let a = three_steps(&mut stored, &data);
    let b = three_steps(&mut rounded, &data);
    let losses = loss_difference(&a, &b);
    eprintln!("top layer on bf16-stored vs rounded fp32 weights: losses differ by {losses:e}");
    assert!(losses <= 1e-5, "losses differ by {losses}");
    for (name, t) in stored.named_parameters() {
        if t.requires_grad() {
            assert_eq!(t.kind(), Kind::Float, "{name}: trained in fp32");
        } else {
            assert_eq!(t.kind(), before[&name].kind(), "{name}");
            assert_eq!(largest_difference(&t, &before[&name]), 0.0, "{name}: frozen");
        }
    }
    assert!(stored.named_parameters().iter().any(|(n, t)| n.starts_with("encoder.layer.1.") && t.dim() == 2 && t.kind() == Kind::Float && largest_difference(t, &before[n]) > 0.0), "the top layer's matrices trained in fp32");
    assert!(stored.named_parameters().iter().any(|(n, t)| n.starts_with("encoder.layer.0.") && t.kind() == Kind::BFloat16), "the frozen layer stays bf16");
}

#[test]
fn scripts_load_bf16_weights_and_bad_uses_say_what_to_do() {
    let _serial = common::serial();
    let (mut session, recorded) = common::session();
    let bert = common::repo().join("tests/fixtures/tiny-bert");
    let llama = common::repo().join("tests/fixtures/decoders/tiny-llama");
    let script = format!(
        r#"
        let m = load_model("{}", #{{ labels: 2, weights: "bf16" }});
        let lm = load_model("{}", #{{ weights: "bf16" }});
        let text = generate(lm, "abc", #{{ max_new_tokens: 3, precision: "bf16", stream: false }});
        print(m.summary());
        [type_of(text), evaluate(lm, "abc abc", #{{ precision: "bf16" }}).loss]
        "#,
        bert.display(),
        llama.display()
    );
    let value = session.eval(&script, "bf16.rhai").unwrap_or_else(|e| panic!("{e}"));
    let parts = value.into_array().unwrap();
    let summary = recorded.borrow().printed.join("\n");
    assert!(summary.contains("parameters stored in bf16"), "{summary}");
    assert_eq!(parts[0].clone().into_string().unwrap(), "string");
    assert!(parts[1].as_float().unwrap().is_finite());
    let err = session.eval(&format!(r#"load_model("{}", #{{ weights: "fp8" }})"#, bert.display()), "bad.rhai").unwrap_err().to_string();
    assert!(err.contains("'weights' must be one of fp32, bf16") && err.contains("fp8"), "{err}");
    let pth = common::repo().join("tests/fixtures/legacy/state_dict.pth");
    let err = session.eval(&format!(r#"load_model("{}", #{{ weights: "bf16" }})"#, pth.display()), "image.rhai").unwrap_err().to_string();
    assert!(err.contains("image network") && err.contains("precision"), "{err}");
}
