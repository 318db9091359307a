//! RoBERTa and DistilBERT against Hugging Face `transformers`, on tiny random
//! models that scripts/make_parity_fixture.py saved with their expected
//! hidden states and logits.

use std::collections::HashMap;
use std::path::PathBuf;

use tch::{Device, Tensor};
use tunebook::model::{Learner, LoadOptions, TextModel, Pooling};

fn fixture(name: &str) -> (PathBuf, HashMap<String, Tensor>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    let expected = Tensor::read_safetensors(dir.join("expected.safetensors")).unwrap().into_iter().collect();
    (dir, expected)
}

fn load(dir: &std::path::Path, labels: Option<Vec<String>>, pooling: Pooling) -> TextModel {
    TextModel::load("tiny", dir, &LoadOptions { labels, pooling, task: None, device: Device::Cpu, dropout: None }).unwrap_or_else(|e| panic!("{e:#}"))
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

fn check_against_transformers(name: &str, class: &str) {
    let (dir, e) = fixture(name);
    // The checkpoint's own head and labels.
    let model = load(&dir, None, Pooling::Pooler);
    assert_eq!(model.labels, vec!["LABEL_0", "LABEL_1", "LABEL_2"]);
    assert!(model.load_report.newly_initialized.is_empty(), "{:?}", model.load_report.newly_initialized);
    let (ids, mask) = (&e["input_ids"], &e["attention_mask"]);
    let types = ids.zeros_like();
    let (hidden, logits) = tch::no_grad(|| (model.hidden_states(ids, &types, mask, false), model.logits(ids, &types, mask, false)));
    let real = mask.unsqueeze(-1).to_kind(tch::Kind::Float);
    let dh = ((&hidden - &e["last_hidden_state"]).abs() * real).max().double_value(&[]);
    let dl = max_diff(&logits, &e["logits"]);
    eprintln!("{name}: hidden states within {dh:.1e}, logits within {dl:.1e}");
    // Measured: hidden states within 3.6e-7, logits within 3.7e-9.
    assert!(dh <= 4e-6 && dl <= 4e-8, "{name}: hidden {dh}, logits {dl}");

    // Saved and reloaded: same logits, saved as the right Hugging Face class.
    let out = tempfile::tempdir().unwrap();
    let saved = model.save(&out.path().join("m")).unwrap();
    std::fs::copy(dir.join("vocab.txt"), saved.join("vocab.txt")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(saved.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], class);
    let again = load(&saved, None, Pooling::Pooler);
    let relogits = tch::no_grad(|| again.logits(ids, &types, mask, false));
    assert!(max_diff(&relogits, &logits) == 0.0, "{name}: reloaded logits differ");

    // New labels replace the head and keep the backbone.
    let fresh = load(&dir, Some(vec!["a".into(), "b".into()]), Pooling::Mean);
    assert_eq!(fresh.load_report.newly_initialized, vec!["classifier.bias".to_string(), "classifier.weight".to_string()]);
    let h2 = tch::no_grad(|| fresh.hidden_states(ids, &types, mask, false));
    assert!(max_diff(&h2, &hidden) == 0.0);
}

#[test]
fn roberta_matches_transformers_and_round_trips() {
    check_against_transformers("tiny-roberta", "RobertaForSequenceClassification");
}

#[test]
fn distilbert_matches_transformers_and_round_trips() {
    check_against_transformers("tiny-distilbert", "DistilBertForSequenceClassification");
}

#[test]
fn distilbert_layers_freeze_by_their_own_names() {
    let (dir, _) = fixture("tiny-distilbert");
    let mut model = load(&dir, None, Pooling::Pooler);
    model.set_trainable("transformer.layer.0-1", false).unwrap();
    let summary = model.summary();
    let rows: Vec<&str> = summary.rows.iter().map(|r| r.module.as_str()).collect();
    assert_eq!(rows, vec!["embeddings", "transformer.layer.0", "transformer.layer.1", "classifier", "pre_classifier"]);
    assert!(summary.rows.iter().filter(|r| r.module.starts_with("transformer")).all(|r| r.trainable == 0 && r.frozen > 0));
}
