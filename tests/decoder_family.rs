//! Decoder language models against Hugging Face `transformers`: tiny random
//! Llama, Qwen2, Mistral, Gemma and GPT-2 checkpoints (one sharded, one
//! tied) and a tiny Llama GGUF with every supported quantization, which
//! scripts/make_decoder_fixtures.py saved with transformers' logits, greedy
//! tokens, chat renderings and tokenizations.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};
use tunebook::inference::{generate, GenerateOptions};
use tunebook::model::causal::Message;
use tunebook::model::weights::gguf::{GgufFile, SaveType};
use tunebook::model::{CausalModel, Learner};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/decoders")
}

fn expected(file: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(file).unwrap().into_iter().collect()
}

fn load(path: &Path) -> CausalModel {
    CausalModel::load("tiny", path, Device::Cpu).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
}

/// The largest logit difference at real (unpadded) positions.
fn logits_diff(model: &CausalModel, e: &HashMap<String, Tensor>) -> f64 {
    let (ids, mask, positions) = (&e["input_ids"], &e["attention_mask"], &e["position_ids"]);
    let logits = tch::no_grad(|| model.forward_step(ids, positions, mask, None, false, false));
    let real = mask.unsqueeze(-1).to_kind(Kind::Float);
    ((logits - &e["logits"]).abs() * real).max().double_value(&[])
}

/// Greedy continuation of the first fixture row, 12 tokens, EOS ignored
/// (as the fixture's `eos_token_id=None`).
fn greedy(model: &mut CausalModel, e: &HashMap<String, Tensor>, use_cache: bool) -> Vec<i64> {
    model.config.eos_token_ids.clear();
    let prompt: Vec<i64> = Vec::try_from(e["input_ids"].get(0)).unwrap();
    let opts = GenerateOptions { max_new_tokens: 12, use_cache, ..Default::default() };
    let out = generate(model, &[prompt], &opts, &mut |_, _| {}, &|| false).unwrap();
    out[0].ids.clone()
}

fn check_family(folder: &str, class: &str) {
    let dir = fixtures().join(folder);
    let e = expected(&dir.join("expected.safetensors"));
    let mut model = load(&dir);
    let d = logits_diff(&model, &e);
    eprintln!("{folder}: logits within {d:.1e} of transformers");
    // Measured: 1.4e-6 to 2.9e-6 across the families.
    assert!(d <= 1e-5, "{folder}: logits differ by {d}");
    let want: Vec<i64> = Vec::try_from(e["greedy"].get(0)).unwrap();
    assert_eq!(greedy(&mut model, &e, true), want, "{folder}: greedy tokens with the KV cache");
    assert_eq!(greedy(&mut model, &e, false), want, "{folder}: greedy tokens without the cache");

    // Saved and reloaded: the class transformers loads, the same logits.
    let out = tempfile::tempdir().unwrap();
    let saved = model.save(&out.path().join("m")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(saved.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], class);
    for f in ["model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
        assert!(saved.join(f).exists(), "{folder}: {f} not saved");
    }
    let again = load(&saved);
    assert_eq!(logits_diff(&again, &e), d, "{folder}: reloaded logits differ");
}

#[test]
fn llama_matches_transformers() {
    check_family("tiny-llama", "LlamaForCausalLM");
}

#[test]
fn llama_with_tied_embeddings_matches_transformers() {
    check_family("tiny-llama-tied", "LlamaForCausalLM");
}

#[test]
fn sharded_llama_checkpoint_loads_every_shard() {
    check_family("tiny-llama-sharded", "LlamaForCausalLM");
}

#[test]
fn qwen2_matches_transformers() {
    check_family("tiny-qwen2", "Qwen2ForCausalLM");
}

#[test]
fn mistral_sliding_window_matches_transformers() {
    check_family("tiny-mistral", "MistralForCausalLM");
}

#[test]
fn gemma_matches_transformers() {
    check_family("tiny-gemma", "GemmaForCausalLM");
}

#[test]
fn gpt2_matches_transformers() {
    check_family("tiny-gpt2", "GPT2LMHeadModel");
}

#[test]
fn gguf_dequantizes_as_gguf_py_and_matches_transformers_gguf_loader() {
    let file = fixtures().join("tiny-llama.gguf");
    let e = expected(&fixtures().join("tiny-llama-gguf-expected.safetensors"));
    let gguf = GgufFile::open(&file).unwrap();
    let kinds: std::collections::BTreeSet<&str> = gguf.tensors.iter().map(|t| t.kind.name()).collect();
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), ["BF16", "F16", "F32", "Q4_0", "Q4_1", "Q8_0"]);
    for info in &gguf.tensors {
        let want = &e[&format!("dequant.{}", info.name)];
        let got = gguf.tensor(info);
        assert_eq!(got.size(), want.size(), "{}", info.name);
        assert!(got.equal(want), "{} ({}): not bit for bit gguf-py's dequantization", info.name, info.kind.name());
    }
    let mut model = load(&file);
    let d = logits_diff(&model, &e);
    eprintln!("tiny-llama.gguf: logits within {d:.1e} of transformers' GGUF loader");
    assert!(d <= 2e-5, "GGUF logits differ by {d}");
    let want: Vec<i64> = Vec::try_from(e["greedy"].get(0)).unwrap();
    assert_eq!(greedy(&mut model, &e, true), want);

    // GGUF round trips: F32 exactly, F16 and Q8_0 within their rounding.
    let out = tempfile::tempdir().unwrap();
    // Measured: F32 0, F16 4.5e-3, Q8_0 0.13 (logits up to 4 in size, random weights).
    for (kind, bound) in [(SaveType::F32, 0.0), (SaveType::F16, 2e-2), (SaveType::Q8_0, 0.3)] {
        let path = out.path().join(format!("m-{kind:?}.gguf"));
        model.save_gguf(&path, kind).unwrap();
        let again = load(&path);
        let base = tch::no_grad(|| model.logits(&e["input_ids"], &e["attention_mask"]));
        let other = tch::no_grad(|| again.logits(&e["input_ids"], &e["attention_mask"]));
        let real = e["attention_mask"].unsqueeze(-1).to_kind(Kind::Float);
        let diff = ((other - base) * real).abs().max().double_value(&[]);
        eprintln!("GGUF saved as {kind:?}: logits within {diff:.1e}");
        assert!(diff <= bound, "{kind:?}: logits differ by {diff}");
        // The tokenizer and template travel in the metadata.
        assert_eq!(again.encode("hello 123").unwrap(), model.encode("hello 123").unwrap());
        assert_eq!(again.chat_template, model.chat_template);
    }
}

#[test]
fn chat_template_and_tokenizer_match_transformers() {
    let fixture: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected_chat.json")).unwrap()).unwrap();
    let folder = load(&fixtures().join("tiny-llama"));
    let from_gguf = load(&fixtures().join("tiny-llama.gguf"));
    for model in [&folder, &from_gguf] {
        for chat in fixture["chats"].as_array().unwrap() {
            let messages: Vec<Message> = chat["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| Message { role: m["role"].as_str().unwrap().into(), content: m["content"].as_str().unwrap().into() })
                .collect();
            for (flag, key) in [(false, "without_generation_prompt"), (true, "with_generation_prompt")] {
                let text = model.apply_chat_template(&messages, flag).unwrap();
                assert_eq!(text, chat[key].as_str().unwrap(), "{key}");
                let ids: Vec<i64> = chat[format!("{key}_ids")].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
                assert_eq!(model.encode(&text).unwrap(), ids, "{key} ids");
            }
        }
        for enc in fixture["encodings"].as_array().unwrap() {
            let text = enc["text"].as_str().unwrap();
            let ids: Vec<i64> = enc["input_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
            assert_eq!(model.encode(text).unwrap(), ids, "{text:?}");
            assert_eq!(model.decode(&ids, false).unwrap(), text, "round trip of {text:?}");
        }
    }
}

#[test]
fn decoders_freeze_by_layer_and_kind() {
    let mut model = load(&fixtures().join("tiny-llama"));
    assert_eq!(model.layer_stack(), ("model.layers", 2));
    let n = model.train_only(&["layers.1".to_string(), "head".to_string()]).unwrap();
    assert_eq!(n, 9 + 1, "layer 1's 9 tensors and lm_head");
    let summary = model.summary();
    let frozen: Vec<&str> = summary.rows.iter().filter(|r| r.trainable == 0).map(|r| r.module.as_str()).collect();
    assert_eq!(frozen, ["embeddings", "model.layers.0", "norm"]);
    assert_eq!(model.select("*.self_attn.q_proj").unwrap().len(), 2);
    let err = model.select("layers.7").unwrap_err().to_string();
    assert!(err.contains("closest names"), "{err}");
}

#[test]
fn bad_decoder_inputs_say_what_is_supported() {
    let out = tempfile::tempdir().unwrap();
    // A truncated GGUF.
    let bytes = std::fs::read(fixtures().join("tiny-llama.gguf")).unwrap();
    let cut = out.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = format!("{:#}", CausalModel::load("x", &cut, Device::Cpu).err().unwrap());
    assert!(err.contains("truncated"), "{err}");
    // An unsupported quantization: the first tensor's type id set to Q4_K (12).
    let gguf = GgufFile::open(&fixtures().join("tiny-llama.gguf")).unwrap();
    let name = gguf.tensors[0].name.as_bytes().to_vec();
    let at = bytes.windows(name.len()).position(|w| w == name.as_slice()).unwrap() + name.len();
    let n_dims = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let type_at = at + 4 + 8 * n_dims;
    let mut q4k = bytes.clone();
    q4k[type_at..type_at + 4].copy_from_slice(&12u32.to_le_bytes());
    let bad = out.path().join("q4k.gguf");
    std::fs::write(&bad, q4k).unwrap();
    let err = format!("{:#}", CausalModel::load("x", &bad, Device::Cpu).err().unwrap());
    assert!(err.contains("Q4_K") && err.contains("Q8_0, Q4_0, Q4_1"), "{err}");
    // A folder whose architecture is not a decoder this build runs.
    let dir = out.path().join("falcon");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("config.json"), r#"{"model_type": "falcon", "architectures": ["FalconForCausalLM"]}"#).unwrap();
    let err = format!("{:#}", CausalModel::load("x", &dir, Device::Cpu).err().unwrap());
    assert!(err.contains("falcon") && err.contains("llama, qwen2, mistral, gemma, gpt2"), "{err}");
    // A prompt longer than the context (64 positions).
    let model = load(&fixtures().join("tiny-llama"));
    let err = generate(&model, &[vec![5; 80]], &GenerateOptions::default(), &mut |_, _| {}, &|| false).unwrap_err().to_string();
    assert!(err.contains("80 tokens") && err.contains("context is 64"), "{err}");
}

#[test]
fn sampling_repeats_with_its_seed_and_stop_strings_end_the_text_before_them() {
    let dir = fixtures().join("tiny-llama");
    let e = expected(&dir.join("expected.safetensors"));
    let mut model = load(&dir);
    model.config.eos_token_ids.clear();
    let prompt: Vec<i64> = Vec::try_from(e["input_ids"].get(0)).unwrap();
    let run = |opts: &GenerateOptions| generate(&model, std::slice::from_ref(&prompt), opts, &mut |_, _| {}, &|| false).unwrap().remove(0);
    let sampled = |seed| GenerateOptions { max_new_tokens: 16, temperature: 1.5, top_k: 50, top_p: 0.95, seed, ..Default::default() };
    let (a, b) = (run(&sampled(1)), run(&sampled(1)));
    assert_eq!(a.ids, b.ids, "the same seed draws the same tokens");
    let others: Vec<Vec<i64>> = (2..6).map(|s| run(&sampled(s)).ids).collect();
    assert!(others.iter().any(|o| *o != a.ids), "other seeds draw other tokens (random weights, temperature 1.5)");
    // temperature 0 is greedy, whatever the seed.
    let greedy_ids: Vec<i64> = Vec::try_from(e["greedy"].get(0)).unwrap();
    let g = run(&GenerateOptions { max_new_tokens: 12, seed: 9, ..Default::default() });
    assert_eq!(g.ids, greedy_ids);

    // A stop string taken from the middle of the greedy text ends it just before.
    let text = g.text.clone();
    let chars: Vec<char> = text.chars().collect();
    assert!(chars.len() >= 6, "{text:?}");
    let cut = chars.len() / 2;
    let stop: String = chars[cut..cut + 2].iter().collect();
    let before = &text[..text.find(&stop).unwrap()];
    let stopped = run(&GenerateOptions { max_new_tokens: 12, stop: vec![stop.clone()], ..Default::default() });
    assert_eq!(stopped.text, before, "stop {stop:?} in {text:?}");
    assert!(stopped.ids.len() < g.ids.len(), "generation stopped early");
}
