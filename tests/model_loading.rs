//! Loading checkpoints: every error names what is wrong.

mod common;

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};
use tunebook::model::{LoadOptions, TextModel, Pooling};

use common::minilm_dir;

/// A copy of MiniLM whose weights and config pass through `edit`.
fn variant(edit_weights: impl FnOnce(&mut Vec<(String, Tensor)>), edit_config: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let src = minilm_dir();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("tokenizer.json"), dir.path().join("tokenizer.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    edit_config(&mut config);
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let mut weights = Tensor::read_safetensors(src.join("model.safetensors")).unwrap();
    edit_weights(&mut weights);
    Tensor::write_safetensors(&weights, dir.path().join("model.safetensors")).unwrap();
    dir
}

fn load(dir: &Path) -> Result<TextModel, String> {
    let opts = LoadOptions { labels: Some(vec!["neg".into(), "pos".into()]), pooling: Pooling::Pooler, task: None, device: Device::Cpu, dropout: None };
    TextModel::load("variant", dir, &opts).map_err(|e| format!("{e:#}"))
}

#[test]
fn the_shipped_checkpoint_loads_and_only_its_position_ids_buffer_is_ignored() {
    let model = load(&minilm_dir()).unwrap();
    assert_eq!(model.load_report.ignored, vec!["embeddings.position_ids".to_string()]);
    assert_eq!(model.load_report.newly_initialized, vec!["classifier.bias".to_string(), "classifier.weight".to_string()]);
}

#[test]
fn names_with_the_bert_prefix_load_too() {
    let dir = variant(|w| w.iter_mut().for_each(|(n, _)| *n = format!("bert.{n}")), |_| {});
    let prefixed = load(dir.path()).unwrap();
    let plain = load(&minilm_dir()).unwrap();
    let a = prefixed.named_parameters().into_iter().find(|(n, _)| n == "encoder.layer.5.output.dense.weight").unwrap().1;
    let b = plain.named_parameters().into_iter().find(|(n, _)| n == "encoder.layer.5.output.dense.weight").unwrap().1;
    assert!(a.equal(&b));
}

#[test]
fn a_missing_tensor_is_named() {
    let dir = variant(|w| w.retain(|(n, _)| n != "encoder.layer.5.output.dense.weight"), |_| {});
    let err = load(dir.path()).unwrap_err();
    assert!(err.contains("1 tensors are missing from the checkpoint: encoder.layer.5.output.dense.weight"), "{err}");
}

#[test]
fn an_unexpected_tensor_is_named() {
    let dir = variant(|w| w.push(("encoder.layer.0.adapter.weight".into(), Tensor::zeros([4], (Kind::Float, Device::Cpu)))), |_| {});
    let err = load(dir.path()).unwrap_err();
    assert!(err.contains("the checkpoint has tensors this model does not: encoder.layer.0.adapter.weight"), "{err}");
}

#[test]
fn a_shape_mismatch_names_the_tensor_and_both_shapes() {
    let dir = variant(
        |w| {
            for (n, t) in w.iter_mut() {
                if n == "pooler.dense.weight" {
                    *t = Tensor::zeros([384, 100], (Kind::Float, Device::Cpu));
                }
            }
        },
        |_| {},
    );
    let err = load(dir.path()).unwrap_err();
    assert!(err.contains("pooler.dense.weight: checkpoint has [384, 100], model expects [384, 384]"), "{err}");
}

#[test]
fn a_config_that_disagrees_with_the_weights_is_a_shape_error() {
    let dir = variant(|_| {}, |c| c["intermediate_size"] = 1000.into());
    let err = load(dir.path()).unwrap_err();
    assert!(err.contains("shape mismatch") && err.contains("intermediate.dense.weight: checkpoint has [1536, 384], model expects [1000, 384]"), "{err}");
}

#[test]
fn an_unsupported_model_type_lists_the_supported_ones() {
    let dir = variant(|_| {}, |c| c["model_type"] = "gpt2".into());
    let err = load(dir.path()).unwrap_err();
    assert!(err.contains("model_type 'gpt2' is not supported; supported model types: bert"), "{err}");
}

#[test]
fn a_tokenizer_that_is_not_json_is_a_clear_error() {
    let dir = variant(|_| {}, |_| {});
    std::fs::write(dir.path().join("tokenizer.json"), "not json").unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(err.contains("cannot load tokenizer") && err.contains("tokenizer.json"), "{err}");
}

#[test]
fn truncated_weights_are_a_clear_error() {
    let dir = variant(|_| {}, |_| {});
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(err.contains("cannot read") && err.contains("model.safetensors"), "{err}");
}

#[test]
fn a_folder_with_only_vocab_txt_loads_with_a_wordpiece_tokenizer() {
    let dir = variant(|_| {}, |_| {});
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    std::fs::copy(minilm_dir().join("vocab.txt"), dir.path().join("vocab.txt")).unwrap();
    let model = load(dir.path()).unwrap();
    let reference = load(&minilm_dir()).unwrap();
    let text = vec!["Hello, World! Fine-tuning is fun.".to_string()];
    assert_eq!(model.tokenizer.encode_batch(&text, 32).unwrap(), reference.tokenizer.encode_batch(&text, 32).unwrap());
}

#[test]
fn a_folder_without_any_tokenizer_says_so() {
    let dir = variant(|_| {}, |_| {});
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(err.contains("has neither tokenizer.json nor vocab.txt"), "{err}");
}

fn tiny_bert() -> PathBuf {
    common::repo().join("tests/fixtures/tiny-bert")
}

#[test]
fn pytorch_model_bin_reads_the_same_tensors_as_safetensors() {
    let from_bin = tunebook::model::weights::hf::read_checkpoint(&tiny_bert().join("pytorch_model.bin")).unwrap();
    let from_st: std::collections::HashMap<String, Tensor> =
        tunebook::model::weights::hf::read_checkpoint(&tiny_bert().join("safetensors/model.safetensors")).unwrap().into_iter().collect();
    // transformers leaves position_ids out of the safetensors file; everything else must agree.
    let compared: Vec<_> = from_bin.iter().filter(|(n, _)| from_st.contains_key(n)).collect();
    assert_eq!(compared.len(), from_st.len(), "tensors missing from the .bin");
    for (name, t) in compared {
        assert!(t.equal(&from_st[name]), "{name} differs");
    }
}

#[test]
fn a_folder_with_pytorch_model_bin_and_vocab_txt_loads() {
    let model = load(&tiny_bert()).unwrap();
    assert_eq!(model.config.hidden_size, 32);
    // transformers' hidden states for the same ids (one row padded), from
    // scripts/make_parity_fixture.py.
    let want: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(tiny_bert().join("expected.safetensors")).unwrap().into_iter().collect();
    let ids = &want["input_ids"];
    let mask = &want["attention_mask"];
    let hidden = tch::no_grad(|| model.hidden_states(ids, &ids.zeros_like(), mask, false));
    assert_eq!(hidden.size(), vec![2, 6, 32]);
    // Padded positions are not compared: their states are never read.
    let real = mask.unsqueeze(-1).to_kind(tch::Kind::Float);
    let diff = ((&hidden - &want["last_hidden_state"]) * real).abs().max().double_value(&[]);
    eprintln!("tiny BERT hidden states within {diff:.2e} of transformers'");
    // Measured: 4.8e-7.
    assert!(diff < 5e-6, "hidden states differ from transformers' by {diff:.2e}");
}

#[test]
fn a_corrupt_pytorch_model_bin_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "vocab.txt"] {
        std::fs::copy(tiny_bert().join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(dir.path().join("pytorch_model.bin"), b"\x80\x02}q\x00.garbage").unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(err.contains("is neither a torch.save zip archive nor a legacy (pre-1.6) torch.save file"), "{err}");
}

#[test]
fn a_legacy_torch_save_file_reads_every_tensor_with_its_strides_and_offsets() {
    let dir = common::repo().join("tests/fixtures/legacy");
    let got: std::collections::HashMap<String, tch::Tensor> = tunebook::model::weights::hf::read_checkpoint(&dir.join("state_dict.pth")).unwrap().into_iter().collect();
    let want = tch::Tensor::read_safetensors(dir.join("expected.safetensors")).unwrap();
    assert_eq!(got.len(), want.len());
    for (name, w) in want {
        let g = &got[&name];
        assert_eq!((g.size(), g.kind()), (w.size(), w.kind()), "{name}");
        assert!(g.equal(&w), "{name}: values differ (a transposed tensor and a view at an offset are in the fixture)");
    }
    // Cut short: a clear error, not a panic.
    let bytes = std::fs::read(dir.join("state_dict.pth")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let cut = out.path().join("cut.pth");
    std::fs::write(&cut, &bytes[..bytes.len() - 20]).unwrap();
    let err = format!("{:#}", tunebook::model::weights::hf::read_checkpoint(&cut).unwrap_err());
    assert!(err.contains("truncated") && err.contains("legacy"), "{err}");
}
