//! The causal language model: a pretrained decoder (Llama, Qwen2, Mistral,
//! Gemma, GPT-2) with its tokenizer, chat template and generation defaults,
//! loaded from a Hugging Face folder or a GGUF file and saved to either.
//! Generation is in `inference::generate`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value as Json;
use tch::{nn, Device, Kind, Tensor};
use tokenizers::Tokenizer;

pub mod chat;
mod convert;
mod peft;
pub mod tokenizer;

pub use chat::{Message, SpecialTokens};

use super::arch::decoder::{causal_mask, positions_from_mask, Decoder, LayerCache};
use super::arch::decoder_config::{DecoderConfig, Family};
use super::arch::gpt2::Gpt2;
use super::arch::DecoderNet;
use super::summary::natural_key;
use super::weights::gguf::{self, GgufFile};
use super::weights::hf::{self, LoadReport};
use super::{LayerGroup, ModelSummary, ModuleCount, WeightStorage};
use crate::task::Task;

/// Defaults for `generate` from the model's `generation_config.json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationDefaults {
    /// Whether the model's authors sample by default.
    pub do_sample: bool,
    /// Their temperature.
    pub temperature: Option<f64>,
    /// Their top-k.
    pub top_k: Option<i64>,
    /// Their top-p.
    pub top_p: Option<f64>,
    /// Their repetition penalty.
    pub repetition_penalty: Option<f64>,
}

/// A pretrained decoder language model.
pub struct CausalModel {
    /// What the user called it (a cache name or a path).
    pub name: String,
    /// The folder or GGUF file it was loaded from.
    pub source: PathBuf,
    /// Its configuration.
    pub config: DecoderConfig,
    vs: nn::VarStore,
    net: DecoderNet,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// Whether encoding prepends the BOS token (GGUF's `add_bos_token`;
    /// a `tokenizer.json` does it in its own post-processor).
    add_bos: bool,
    /// The Jinja chat template, if the model has one.
    pub chat_template: Option<String>,
    /// The special tokens' texts.
    pub special: SpecialTokens,
    /// Sampling defaults.
    pub generation: GenerationDefaults,
    /// What loading reported.
    pub load_report: LoadReport,
    /// The task `Learner` reports.
    task: Task,
    /// No class names: the outputs are the vocabulary.
    labels: Vec<String>,
    /// LoRA, once added.
    lora: Option<crate::model::layers::LoraConfig>,
    /// Whether training passes checkpoint the decoder's layers.
    checkpointing: bool,
}

/// The special token's text in `tokenizer_config.json` (a string or `{ "content": ... }`).
fn token_text(v: Option<&Json>) -> Option<String> {
    match v? {
        Json::String(s) => Some(s.clone()),
        Json::Object(o) => o.get("content").and_then(Json::as_str).map(str::to_string),
        _ => None,
    }
}

/// The chat template of a Hugging Face folder: `chat_template.jinja`
/// (transformers 5 writes it), else `tokenizer_config.json`'s entry (a
/// string, or named templates of which `default` is used).
fn folder_chat_template(dir: &Path, tokenizer_config: &Json) -> Option<String> {
    if let Ok(t) = std::fs::read_to_string(dir.join("chat_template.jinja")) {
        return Some(t);
    }
    match tokenizer_config.get("chat_template")? {
        Json::String(s) => Some(s.clone()),
        Json::Array(named) => named.iter().find(|t| t["name"] == "default").and_then(|t| t["template"].as_str()).map(str::to_string),
        _ => None,
    }
}

fn read_json(path: &Path) -> Result<Option<Json>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(serde_json::from_str(&s).with_context(|| format!("{} is not valid JSON", path.display()))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

impl CausalModel {
    /// Whether `path` holds a decoder this build loads: a `.gguf` file, or
    /// a folder whose `config.json` names a decoder `model_type`.
    pub fn is_decoder(path: &Path) -> bool {
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
            return true;
        }
        if path.is_dir() && Self::gguf_in(path).is_some() && !path.join("config.json").exists() {
            return true;
        }
        let Ok(Some(c)) = read_json(&path.join("config.json")) else { return false };
        let model_type = c.get("model_type").and_then(Json::as_str).unwrap_or("");
        super::arch::decoder_config::Family::parse(model_type).is_some() || c["architectures"][0].as_str().is_some_and(|a| a.ends_with("ForCausalLM") || a.ends_with("LMHeadModel"))
    }

    /// The one `.gguf` file in a folder.
    fn gguf_in(dir: &Path) -> Option<PathBuf> {
        let mut found = std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == "gguf"));
        let first = found.next()?;
        found.next().is_none().then_some(first)
    }

    /// Loads a decoder from a Hugging Face folder or a GGUF file (or a
    /// folder that holds one GGUF file and no `config.json`).
    pub fn load(name: &str, path: &Path, device: Device) -> Result<Self> {
        if path.is_dir() && !path.join("config.json").exists() {
            if let Some(file) = Self::gguf_in(path) {
                return Self::load_gguf(name, &file, device);
            }
        }
        if path.is_file() {
            return Self::load_gguf(name, path, device);
        }
        Self::load_folder(name, path, device)
    }

    fn build(config: &DecoderConfig, device: Device) -> (nn::VarStore, DecoderNet) {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let net = match config.family {
            Family::Gpt2 => DecoderNet::Gpt2(Gpt2::new(&root, config)),
            _ => DecoderNet::Llama(Decoder::new(&root, config)),
        };
        (vs, net)
    }

    /// Copies checkpoint tensors (already in this model's names) into the
    /// variables; every variable must be found.
    fn fill(vs: &nn::VarStore, tensors: Vec<(String, Tensor)>, report: &mut LoadReport, source: &str) -> Result<()> {
        let vars = vs.variables();
        let mut missing: std::collections::BTreeSet<String> = vars.keys().cloned().collect();
        let mut mismatched = Vec::new();
        for (name, t) in tensors {
            match vars.get(&name) {
                Some(var) => {
                    if let Err(line) = hf::copy_checked(&name, var, &t, "checkpoint") {
                        mismatched.push(line);
                    }
                    missing.remove(&name);
                }
                None => report.ignored.push(name),
            }
        }
        if !mismatched.is_empty() {
            bail!("{source} does not fit its config: {}", mismatched.join("; "));
        }
        if !missing.is_empty() {
            let list: Vec<String> = missing.into_iter().collect();
            bail!("{source} lacks {} weight(s) the model needs: {}", list.len(), list.iter().take(6).cloned().collect::<Vec<_>>().join(", "));
        }
        report.ignored.sort();
        Ok(())
    }

    fn load_folder(name: &str, dir: &Path, device: Device) -> Result<Self> {
        let raw = read_json(&dir.join("config.json"))?.with_context(|| format!("{} has no config.json", dir.display()))?;
        let mut config = DecoderConfig::from_json(&raw).with_context(|| format!("{}", dir.display()))?;
        let tokenizer_file = dir.join("tokenizer.json");
        if !tokenizer_file.exists() {
            bail!("{} has no tokenizer.json; save the model's fast tokenizer there (tokenizer.save_pretrained in transformers)", dir.display());
        }
        let tokenizer = Tokenizer::from_file(&tokenizer_file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", tokenizer_file.display()))?;
        let tokenizer_config = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or(Json::Null);
        let special = SpecialTokens {
            bos: token_text(tokenizer_config.get("bos_token")),
            eos: token_text(tokenizer_config.get("eos_token")),
            pad: token_text(tokenizer_config.get("pad_token")),
        };
        let gen = read_json(&dir.join("generation_config.json"))?.unwrap_or(Json::Null);
        let gen_eos = match gen.get("eos_token_id") {
            Some(Json::Number(n)) => n.as_i64().into_iter().collect(),
            Some(Json::Array(a)) => a.iter().filter_map(Json::as_i64).collect(),
            _ => Vec::new(),
        };
        if !gen_eos.is_empty() {
            config.eos_token_ids = gen_eos;
        }
        if config.eos_token_ids.is_empty() {
            if let Some(id) = special.eos.as_deref().and_then(|t| tokenizer.token_to_id(t)) {
                config.eos_token_ids.push(id as i64);
            }
        }
        let generation = GenerationDefaults {
            do_sample: gen.get("do_sample").and_then(Json::as_bool).unwrap_or(false),
            temperature: gen.get("temperature").and_then(Json::as_f64),
            top_k: gen.get("top_k").and_then(Json::as_i64),
            top_p: gen.get("top_p").and_then(Json::as_f64),
            repetition_penalty: gen.get("repetition_penalty").and_then(Json::as_f64),
        };
        let tensors = convert::read_folder_weights(dir, &config)?;
        let (vs, net) = Self::build(&config, device);
        let mut load_report = LoadReport::default();
        Self::fill(&vs, tensors, &mut load_report, &dir.display().to_string())?;
        Ok(Self {
            name: name.into(),
            source: dir.to_path_buf(),
            chat_template: folder_chat_template(dir, &tokenizer_config),
            config,
            vs,
            net,
            tokenizer,
            add_bos: false,
            special,
            generation,
            load_report,
            task: Task::NextToken,
            labels: Vec::new(),
            lora: None,
            checkpointing: false,
        })
    }

    fn load_gguf(name: &str, file: &Path, device: Device) -> Result<Self> {
        let gguf = GgufFile::open(file)?;
        let config = DecoderConfig::from_gguf(&gguf).with_context(|| format!("{}", file.display()))?;
        let tokenizer = tokenizer::from_gguf(&gguf).with_context(|| format!("{}", file.display()))?;
        let token = |key: &str| gguf.get(key).and_then(|v| v.as_int()).and_then(|id| tokenizer.id_to_token(id as u32));
        let special = SpecialTokens { bos: token("tokenizer.ggml.bos_token_id"), eos: token("tokenizer.ggml.eos_token_id"), pad: token("tokenizer.ggml.padding_token_id") };
        let add_bos = matches!(gguf.get("tokenizer.ggml.add_bos_token"), Some(gguf::Value::Bool(true)));
        let chat_template = gguf.get("tokenizer.chat_template").and_then(|v| v.as_str()).map(str::to_string);
        let tensors = convert::from_gguf_names(&gguf, &config)?;
        let (vs, net) = Self::build(&config, device);
        let mut load_report = LoadReport::default();
        Self::fill(&vs, tensors, &mut load_report, &file.display().to_string())?;
        Ok(Self {
            name: name.into(),
            source: file.to_path_buf(),
            config,
            vs,
            net,
            tokenizer,
            add_bos,
            chat_template,
            special,
            generation: GenerationDefaults::default(),
            load_report,
            task: Task::NextToken,
            labels: Vec::new(),
            lora: None,
            checkpointing: false,
        })
    }

    /// Token ids of `text` (with the BOS token where the model adds one).
    pub fn encode(&self, text: &str) -> Result<Vec<i64>> {
        let enc = self.tokenizer.encode(text, true).map_err(|e| anyhow::anyhow!("cannot tokenize: {e}"))?;
        let mut ids: Vec<i64> = enc.get_ids().iter().map(|&i| i as i64).collect();
        if self.add_bos {
            if let Some(bos) = self.config.bos_token_id {
                if ids.first() != Some(&bos) {
                    ids.insert(0, bos);
                }
            }
        }
        Ok(ids)
    }

    /// The text of token ids; special tokens are left out when `skip_special`.
    pub fn decode(&self, ids: &[i64], skip_special: bool) -> Result<String> {
        let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
        self.tokenizer.decode(&ids, skip_special).map_err(|e| anyhow::anyhow!("cannot decode: {e}"))
    }

    /// The tokens of `text` as strings, as the vocabulary spells them.
    pub fn token_strings(&self, text: &str) -> Result<Vec<String>> {
        Ok(self.encode(text)?.into_iter().map(|id| self.tokenizer.id_to_token(id as u32).unwrap_or_default()).collect())
    }

    /// The chat rendered with the model's template.
    pub fn apply_chat_template(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let template = self.chat_template.as_deref().with_context(|| format!("{} has no chat template; give the prompt as a string instead", self.name))?;
        chat::render(template, messages, add_generation_prompt, &self.special)
    }

    /// The network's logits `[batch, seq, vocab]` for `[batch, seq]` ids and
    /// a 0/1 attention mask, at positions `0..seq` (as transformers'
    /// forward without `position_ids`), without a cache.
    pub fn logits(&self, ids: &Tensor, attention_mask: &Tensor) -> Tensor {
        let (b, s) = ids.size2().expect("ids are [batch, seq]");
        let positions = Tensor::arange(s, (Kind::Int64, ids.device())).unsqueeze(0).expand([b, s], true);
        self.forward_step(ids, &positions, attention_mask, None, false, false)
    }

    /// One forward step: `ids` at `positions`; `attention_mask` covers the
    /// cached keys and these (`[batch, cached + seq]`). With `last_only`
    /// only the last position's logits are computed (what generation needs).
    pub fn forward_step(&self, ids: &Tensor, positions: &Tensor, attention_mask: &Tensor, cache: Option<&mut Vec<LayerCache>>, train: bool, last_only: bool) -> Tensor {
        let device = self.vs.device();
        let queries = ids.size()[1];
        let mask = causal_mask(&attention_mask.to_device(device), queries, self.config.sliding_window, Kind::Float);
        self.net.forward(&ids.to_device(device), &positions.to_device(device), &mask, cache, train, last_only)
    }

    /// Where the weights are.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// A fresh KV cache.
    pub fn new_cache(&self) -> Vec<LayerCache> {
        (0..self.config.num_layers).map(|_| LayerCache::default()).collect()
    }

    /// The kind most of the weights are stored in (bf16 after `weights:
    /// "bf16"`, whose trained ones are fp32), as `torch_dtype` names it.
    pub fn dtype(&self) -> Kind {
        let summary = <Self as super::Learner>::summary(self);
        if 2 * summary.storage.bf16 > summary.total() {
            Kind::BFloat16
        } else {
            Kind::Float
        }
    }

    /// The Hugging Face names and tensors as the checkpoint stores them
    /// (GPT-2's `Conv1D` weights back to `[in, out]`), tied weights once.
    fn checkpoint_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out: Vec<(String, Tensor)> = self.merged_tensors().into_iter().map(|(n, t)| convert::to_checkpoint(&self.config, n, t)).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn named_parameters_sorted(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        v.sort_by_key(|(n, _)| natural_key(n));
        v
    }

    /// Saves the Hugging Face layout into `dir` (atomically): `config.json`,
    /// `model.safetensors`, `tokenizer.json`, `tokenizer_config.json` with
    /// the chat template, `generation_config.json`.
    pub fn save_folder(&self, dir: &Path) -> Result<PathBuf> {
        super::save_folder(dir, |tmp| {
            let dtype = match self.dtype() {
                Kind::BFloat16 => "bfloat16",
                Kind::Half => "float16",
                _ => "float32",
            };
            std::fs::write(tmp.join("config.json"), serde_json::to_string_pretty(&self.config.to_json(dtype))?)?;
            let tensors: Vec<(String, Tensor)> = self.checkpoint_tensors().into_iter().map(|(n, t)| (n, t.contiguous())).collect();
            hf::write_safetensors(&tensors, &tmp.join("model.safetensors"))?;
            self.tokenizer.save(tmp.join("tokenizer.json"), false).map_err(|e| anyhow::anyhow!("cannot write tokenizer.json: {e}"))?;
            let mut tc = serde_json::json!({
                "tokenizer_class": "PreTrainedTokenizerFast",
                "model_max_length": self.config.max_positions,
                "clean_up_tokenization_spaces": false,
                "add_bos_token": self.add_bos,
            });
            for (key, value) in [("bos_token", &self.special.bos), ("eos_token", &self.special.eos), ("pad_token", &self.special.pad)] {
                if let Some(v) = value {
                    tc[key] = v.clone().into();
                }
            }
            if let Some(t) = &self.chat_template {
                tc["chat_template"] = t.clone().into();
            }
            std::fs::write(tmp.join("tokenizer_config.json"), serde_json::to_string_pretty(&tc)?)?;
            let mut gen = serde_json::json!({ "bos_token_id": self.config.bos_token_id, "pad_token_id": self.config.pad_token_id });
            gen["eos_token_id"] = match self.config.eos_token_ids.as_slice() {
                [one] => (*one).into(),
                many => many.to_vec().into(),
            };
            if self.generation.do_sample {
                gen["do_sample"] = true.into();
            }
            for (key, v) in [("temperature", self.generation.temperature), ("top_p", self.generation.top_p), ("repetition_penalty", self.generation.repetition_penalty)] {
                if let Some(v) = v {
                    gen[key] = v.into();
                }
            }
            std::fs::write(tmp.join("generation_config.json"), serde_json::to_string_pretty(&gen)?)?;
            Ok(())
        })
    }

    /// Saves a GGUF file with the tokenizer and chat template in its
    /// metadata and the weight matrices as `matrices` (F16 by default).
    pub fn save_gguf(&self, file: &Path, matrices: gguf::SaveType) -> Result<PathBuf> {
        let (metadata, tensors) = convert::to_gguf(self)?;
        gguf::write(file, &metadata, &tensors, matrices)?;
        Ok(std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf()))
    }

    /// The stack of decoder layers' module path.
    fn stack_path(&self) -> &'static str {
        match self.config.family {
            Family::Gpt2 => "transformer.h",
            _ => "model.layers",
        }
    }

    /// Which summary row a parameter counts under.
    fn summary_row(&self, name: &str) -> String {
        let stack = format!("{}.", self.stack_path());
        match name.strip_prefix(&stack) {
            Some(rest) => format!("{stack}{}", rest.split('.').next().unwrap_or("")),
            None => match name {
                n if n.ends_with("embed_tokens.weight") || n.ends_with("wte.weight") || n.ends_with("wpe.weight") => "embeddings".into(),
                n if n.starts_with("lm_head") => "head".into(),
                _ => "norm".into(),
            },
        }
    }

    /// Whether one selector part names parameter `name`.
    fn matches(&self, selector: &str, name: &str) -> bool {
        use super::adapt::freeze::{expand_range, module_prefixes};
        let stack = self.stack_path();
        // `layers.0-11` reads as `model.layers.0-11`.
        let qualified = |s: &str| if s.starts_with("layers.") || s.starts_with("h.") { format!("{}.{s}", stack.rsplit_once('.').map(|p| p.0).unwrap_or("")) } else { s.to_string() };
        match selector {
            "all" | "*" => true,
            "embeddings" => self.summary_row(name) == "embeddings",
            "encoder" | "decoder" | "layers" => name.starts_with(&format!("{stack}.")),
            "head" => self.summary_row(name) == "head" || (self.config.tie_word_embeddings && self.summary_row(name) == "embeddings" && !name.contains("wpe")),
            "norm" => name.contains("norm.") || name.contains(".ln_") || name.contains("ln_f."),
            "bias" => name.ends_with(".bias"),
            "lora" => crate::model::LoraConfig::is_lora_variable(name),
            "adapter" => name.contains(".adapter."),
            _ => {
                let pattern = qualified(selector);
                expand_range(&pattern).iter().any(|p| module_prefixes(name).any(|m| m == p || crate::suggest::glob_match(p, m) || crate::suggest::glob_match(p, name)))
            }
        }
    }
}

impl crate::data::ChatFormat for CausalModel {
    fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        self.apply_chat_template(messages, add_generation_prompt)
    }
    fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
    fn eos_text(&self) -> Option<String> {
        self.special.eos.clone().or_else(|| self.config.eos_token_ids.first().and_then(|&id| self.tokenizer.id_to_token(id as u32)))
    }
    fn pad_id(&self) -> u32 {
        self.config.pad_token_id.or(self.config.eos_token_ids.first().copied()).unwrap_or(0) as u32
    }
    fn bos_id(&self) -> Option<u32> {
        self.config.bos_token_id.filter(|_| self.add_bos).map(|b| b as u32)
    }
}

impl super::Learner for CausalModel {
    super::learner::learner_fields!();

    fn forward(&self, inputs: &crate::data::Inputs, train: bool) -> Result<Tensor> {
        match inputs {
            crate::data::Inputs::Text { input_ids, attention_mask, .. } => {
                // Positions count from each example's first token: left padding
                // shifts nothing, and packed examples each start at 0.
                let positions = positions_from_mask(attention_mask);
                Ok(self.forward_step(input_ids, &positions, attention_mask, None, train, false))
            }
            crate::data::Inputs::Images(_) => bail!("a language model reads text, not images"),
        }
    }

    fn own_loss(&self, inputs: &crate::data::Inputs, labels: &Tensor, train: bool) -> Option<Result<Tensor>> {
        let crate::data::Inputs::Text { input_ids, attention_mask, .. } = inputs else { return None };
        let device = self.vs.device();
        let mask = attention_mask.to_device(device);
        let attend = causal_mask(&mask, mask.size()[1], self.config.sliding_window, Kind::Float);
        let inputs = crate::model::layers::checkpoint_inputs(self.checkpointing, train, self.stack_path(), self.config.num_layers, || self.named_parameters_sorted());
        let hidden = self.net.hidden(&input_ids.to_device(device), &positions_from_mask(&mask), &attend, train, crate::model::layers::BlockRun::from_inputs(inputs.as_deref()));
        Some(Ok(crate::model::layers::linear_cross_entropy(&hidden, self.net.head_weight(), labels)))
    }

    unsafe fn set_checkpointing(&mut self, on: bool) -> Result<()> {
        self.checkpointing = on;
        Ok(())
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        self.named_parameters_sorted()
    }

    fn summary(&self) -> ModelSummary {
        let mut rows: Vec<ModuleCount> = Vec::new();
        for (name, t) in self.named_parameters_sorted() {
            let module = self.summary_row(&name);
            let n = t.numel() as i64;
            let row = match rows.iter_mut().find(|r| r.module == module) {
                Some(r) => r,
                None => {
                    rows.push(ModuleCount { module, trainable: 0, frozen: 0 });
                    rows.last_mut().unwrap()
                }
            };
            if t.requires_grad() {
                row.trainable += n;
            } else {
                row.frozen += n;
            }
        }
        ModelSummary { name: self.name.clone(), labels: Vec::new(), task: self.task, pooling: None, device: self.vs.device(), rows, batch_norm: None, storage: WeightStorage::of(self.named_parameters_sorted().iter().map(|(_, t)| t)) }
    }

    fn layer_groups(&self) -> Vec<LayerGroup> {
        let stack = self.stack_path();
        let layers = self.config.num_layers;
        let mut groups: Vec<LayerGroup> = std::iter::once("head".to_string())
            .chain((0..layers).rev().map(|i| format!("{stack}.{i}")))
            .chain(std::iter::once("embeddings".to_string()))
            .map(|name| LayerGroup { name, params: Vec::new() })
            .collect();
        let last = groups.len() - 1;
        for (name, _) in self.named_parameters_sorted() {
            let row = self.summary_row(&name);
            let index = if row == "embeddings" {
                last
            } else if let Some(i) = row.strip_prefix(&format!("{stack}.")).and_then(|i| i.parse::<i64>().ok()) {
                (layers - i) as usize
            } else {
                0
            };
            groups[index].params.push(name);
        }
        groups
    }

    fn select(&self, selector: &str) -> Result<Vec<String>> {
        let names: Vec<String> = self.named_parameters_sorted().into_iter().map(|(n, _)| n).collect();
        let mut chosen = Vec::new();
        for part in selector.split(',').map(str::trim) {
            let matched: Vec<String> = names.iter().filter(|n| self.matches(part, n)).cloned().collect();
            if matched.is_empty() {
                let mut modules: Vec<String> = names.iter().flat_map(|n| super::adapt::freeze::module_prefixes(n).map(str::to_string).collect::<Vec<_>>()).collect();
                modules.sort();
                modules.dedup();
                let mut candidates: Vec<String> = super::KINDS.iter().map(|(k, _)| k.to_string()).collect();
                candidates.extend(modules);
                bail!(
                    "'{part}' names no module of this model; closest names: {}. A selector is a kind ({}), a module path, a layer range such as layers.0-3, or a glob such as {}.*.self_attn",
                    crate::suggest::closest(part, &candidates, 8).join(", "),
                    super::KINDS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", "),
                    self.stack_path()
                );
            }
            for m in matched {
                if !chosen.contains(&m) {
                    chosen.push(m);
                }
            }
        }
        Ok(chosen)
    }

    fn layer_stack(&self) -> (&'static str, i64) {
        (self.stack_path(), self.config.num_layers)
    }

    fn save(&self, path: &Path) -> Result<PathBuf> {
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
            return self.save_gguf(path, gguf::SaveType::F16);
        }
        self.save_folder(path)
    }
}

/// The parameters' total count.
pub fn parameter_count(model: &CausalModel) -> i64 {
    model.vs.variables().values().map(|t| t.numel() as i64).sum()
}
