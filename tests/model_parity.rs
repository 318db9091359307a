//! Parity with Hugging Face `transformers` for the shipped MiniLM, against
//! the fixture that scripts/make_parity_fixture.py wrote.

mod common;

use std::collections::HashMap;

use tch::{Kind, Tensor};
use tunebook::model::{Pooling, TextModel};

fn fixture() -> (serde_json::Value, HashMap<String, Tensor>) {
    let dir = common::repo().join("tests/fixtures");
    let meta = serde_json::from_str(&std::fs::read_to_string(dir.join("minilm_parity.json")).unwrap()).unwrap();
    let tensors = Tensor::read_safetensors(dir.join("minilm_parity.safetensors")).unwrap().into_iter().collect();
    (meta, tensors)
}

fn minilm() -> TextModel {
    common::load_minilm(&["a", "b"], Pooling::Mean)
}

fn sentences(meta: &serde_json::Value) -> Vec<String> {
    meta["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

#[test]
fn tokenizer_matches_the_reference_with_truncation() {
    let (meta, t) = fixture();
    let model = minilm();
    let max_len = meta["max_len"].as_u64().unwrap() as usize;
    let ids = &t["input_ids"];
    let mask = &t["attention_mask"];
    for (i, (ours, _)) in model.tokenizer.encode_batch(&sentences(&meta), max_len).unwrap().into_iter().enumerate() {
        let len = mask.get(i as i64).sum(Kind::Int64).int64_value(&[]) as usize;
        let theirs: Vec<i64> = Vec::try_from(ids.get(i as i64).narrow(0, 0, len as i64)).unwrap();
        let ours: Vec<i64> = ours.iter().map(|&x| x as i64).collect();
        assert_eq!(ours, theirs, "token ids differ for sentence {i}");
    }
}

#[test]
fn hidden_states_match_transformers_within_4e_5() {
    let (_, t) = fixture();
    let model = minilm();
    let hidden = tch::no_grad(|| model.hidden_states(&t["input_ids"], &t["token_type_ids"], &t["attention_mask"], false));
    let real = t["attention_mask"].unsqueeze(-1).to_kind(Kind::Float);
    let diff = ((hidden - &t["last_hidden_state"]).abs() * real).max().double_value(&[]);
    eprintln!("max abs difference of hidden states over real tokens: {diff:.2e}");
    // Measured: 3.3e-6.
    assert!(diff <= 4e-5, "hidden states differ by {diff}");
}

#[test]
fn sentence_embeddings_match_and_rank_paraphrases_above_unrelated_pairs() {
    let (meta, t) = fixture();
    let model = minilm();
    let max_len = meta["max_len"].as_u64().unwrap() as usize;
    let ours = tunebook::inference::embed(&model, &sentences(&meta), max_len).unwrap();
    let diff = (&ours - &t["embeddings"]).abs().max().double_value(&[]);
    eprintln!("max abs difference of embeddings: {diff:.2e}");
    // Measured: 2.5e-7.
    assert!(diff <= 3e-6, "embeddings differ by {diff}");
    for pair in meta["pairs"].as_array().unwrap() {
        let (a, b) = (pair["a"].as_i64().unwrap(), pair["b"].as_i64().unwrap());
        let cos = (ours.get(a) * ours.get(b)).sum(Kind::Float).double_value(&[]);
        let reference = pair["cosine"].as_f64().unwrap();
        // Measured: at most 2.4e-7.
        assert!((cos - reference).abs() < 3e-6, "cosine {cos} vs reference {reference}");
        match pair["kind"].as_str().unwrap() {
            "paraphrase" => assert!(cos > 0.5, "paraphrases scored only {cos}"),
            _ => assert!(cos.abs() < 0.2, "unrelated sentences scored {cos}"),
        }
    }
}

#[test]
fn script_api_embeds_and_describes_the_model() {
    // The same session the CLI and notebook use.
    let (mut session, _) = common::session();
    let out = session
        .eval(
            r#"
            let m = load_model("minilm", #{ labels: 2 });
            let e = m.embed(["A man is playing a guitar.", "Someone is strumming a guitar.", "Photosynthesis converts light into chemical energy in plants."]);
            let dot = |a, b| { let s = 0.0; for i in 0..a.len() { s += a[i] * b[i]; } s };
            let params = m.parameters();
            #{ dims: e[0].len(), para: dot.call(e[0], e[1]), unrelated: dot.call(e[0], e[2]),
               hidden: m.config.hidden_size, n_params: params.len(), first: params[0].name, last: params[params.len() - 1].name,
               frozen_pooler: params.filter(|p| p.name.starts_with("pooler")).all(|p| p.trainable) }
            "#,
            "embed.rhai",
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .cast::<rhai::Map>();
    assert_eq!(out["dims"].as_int().unwrap(), 384);
    assert_eq!(out["hidden"].as_int().unwrap(), 384);
    assert!(out["para"].as_float().unwrap() > 0.6 && out["unrelated"].as_float().unwrap().abs() < 0.2);
    assert_eq!(out["n_params"].as_int().unwrap(), 6 * 16 + 5 + 2 + 2);
    // Model order: embeddings first, the head last.
    assert!(out["first"].clone().into_string().unwrap().starts_with("embeddings."));
    assert!(out["last"].clone().into_string().unwrap().starts_with("classifier."));
    assert!(out["frozen_pooler"].as_bool().unwrap(), "the pooler trains with the default pooler head");
}

#[test]
fn a_tokenizer_built_from_vocab_txt_matches_tokenizer_json() {
    let (meta, _) = fixture();
    let model = minilm();
    let from_vocab = tunebook::data::TextTokenizer::from_vocab(&model.source.join("vocab.txt"), true).unwrap();
    let texts = sentences(&meta);
    assert_eq!(from_vocab.encode_batch(&texts, 24).unwrap(), model.tokenizer.encode_batch(&texts, 24).unwrap());
}
