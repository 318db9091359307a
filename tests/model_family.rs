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

/// A padded batch against each of its rows run alone without padding: the
/// encoder packs the real tokens of a padded batch (`TokenLayout`), and the
/// states of real tokens, the logits and the gradients must not change.
fn padding_changes_nothing(name: &str, lora: bool) {
    let (dir, e) = fixture(name);
    let mut model = load(&dir, Some(vec!["a".into(), "b".into(), "c".into()]), Pooling::Mean);
    if lora {
        let targets = model.default_lora_targets();
        model.add_lora(&tunebook::model::LoraConfig { r: 2, alpha: 4.0, targets, ..Default::default() }).unwrap();
        // B starts at zero; a trained-looking update makes the check bite.
        tch::no_grad(|| {
            for (n, mut t) in model.named_parameters() {
                if n.contains("lora_B") {
                    let _ = t.g_add_(&(Tensor::randn_like(&t) * 0.1));
                }
            }
        });
    }
    let (ids, mask) = (&e["input_ids"], &e["attention_mask"]);
    let lengths: Vec<i64> = Vec::try_from(mask.sum_dim_intlist(1, false, tch::Kind::Int64)).unwrap();
    assert!(lengths.iter().any(|&n| n < ids.size()[1]), "{name}: the fixture's batch needs padding for this test");
    let (names, params): (Vec<String>, Vec<Tensor>) = model.named_parameters().into_iter().filter(|(_, t)| t.requires_grad()).unzip();
    let grads = |loss: Tensor| Tensor::run_backward(&[&loss], &params, false, false);

    let hidden = model.hidden_states(ids, &ids.zeros_like(), mask, false);
    let batched_grads = grads(model.logits(ids, &ids.zeros_like(), mask, false).sum(tch::Kind::Float));
    let pads = mask.eq(0).unsqueeze(-1).to_kind(tch::Kind::Float);
    assert_eq!((&hidden * pads).abs().max().double_value(&[]), 0.0, "{name}: padding's states are zero");

    let mut alone_loss = Tensor::zeros([], (tch::Kind::Float, Device::Cpu));
    let mut states = 0.0f64;
    for (i, &n) in lengths.iter().enumerate() {
        let row = ids.get(i as i64).narrow(0, 0, n).unsqueeze(0);
        let ones = row.ones_like();
        let h = model.hidden_states(&row, &row.zeros_like(), &ones, false);
        let d = max_diff(&h.get(0), &hidden.get(i as i64).narrow(0, 0, n));
        states = states.max(d);
        alone_loss = alone_loss + model.logits(&row, &row.zeros_like(), &ones, false).sum(tch::Kind::Float);
    }
    let name = if lora { format!("{name} with LoRA") } else { name.to_string() };
    eprintln!("{name}: states of real tokens, padded batch against rows alone: within {states:.1e}");
    // Measured: 1.2e-7 to 3.6e-7 over the four cases.
    assert!(states <= 3e-6, "{name}: the states of real tokens differ by {states}");
    // Relative to the largest gradient: some are zero in exact arithmetic
    // (a key's bias shifts every score of a query alike) and only noise here.
    let scale = batched_grads.iter().map(|g| g.abs().max().double_value(&[])).fold(0.0, f64::max);
    let (worst, at) = grads(alone_loss).iter().zip(&batched_grads).zip(&names).map(|((a, b), n)| (max_diff(a, b) / scale, n)).fold((0.0, &names[0]), |w, x| if x.0 > w.0 { x } else { w });
    eprintln!("{name}: gradients of the padded batch against its rows alone: within {worst:.1e} of the largest, in {at}");
    // Measured: 6.0e-8 to 1.1e-7 over the four cases.
    assert!(worst <= 1e-6, "{name}: the gradient of {at} differs by {worst} of the largest gradient");
}

#[test]
fn padding_changes_no_state_or_gradient_of_real_tokens() {
    padding_changes_nothing("tiny-bert", false);
    padding_changes_nothing("tiny-bert", true);
    padding_changes_nothing("tiny-roberta", false);
    padding_changes_nothing("tiny-distilbert", false);
}
