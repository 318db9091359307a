//! Choosing what trains in the text model: selectors over its parameter
//! names, its layer groups, and the parameters it never uses.

use anyhow::{bail, Result};

use super::TextModel;
use crate::model::adapt::freeze::{expand_range, kind_names, module_prefixes, LayerGroup, KINDS};
use crate::model::adapt::heads::Pooling;
use crate::suggest::{closest, glob_match};

impl TextModel {
    /// The names of the parameters a selector names. A selector is a kind
    /// (`head`, `norm`, ...; see `KINDS`), a module path (`encoder.layer.3`),
    /// a layer range (`encoder.layer.0-3`) or a glob over module paths
    /// (`encoder.layer.*.attention`, `*.bias`). Several selectors can be
    /// joined with commas. A selector that matches nothing is an error that
    /// lists the closest module names.
    pub fn select(&self, selector: &str) -> Result<Vec<String>> {
        let names: Vec<String> = self.named_parameters().into_iter().map(|(n, _)| n).filter(|n| !self.is_unused(n)).collect();
        let mut chosen = std::collections::BTreeSet::new();
        for part in selector.split(',').map(str::trim) {
            if part.is_empty() {
                bail!("an empty selector names nothing; give a module path such as \"encoder.layer.5\" or a kind ({})", kind_names());
            }
            let matched: Vec<&String> = names.iter().filter(|n| self.matches(part, n)).collect();
            if matched.is_empty() {
                let kinds: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
                if kinds.contains(&part) {
                    bail!("'{part}' names no parameter of this model (it has no {part})");
                }
                let modules = self.module_names();
                let mut candidates: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
                candidates.extend(modules);
                bail!(
                    "'{part}' names no module of this model; closest names: {}. A selector is a kind ({}), a module path, a layer range such as encoder.layer.0-3, or a glob such as encoder.layer.*.attention",
                    closest(part, &candidates, 8).join(", "),
                    kind_names()
                );
            }
            chosen.extend(matched.into_iter().cloned());
        }
        let mut chosen: Vec<String> = chosen.into_iter().collect();
        chosen.sort_by_key(|n| crate::model::summary::natural_key(n));
        Ok(chosen)
    }

    /// The parameter groups from the top of the model down: the head (with
    /// anything else above the encoder), each transformer layer from the
    /// last to the first, then the embeddings.
    pub fn layer_groups(&self) -> Vec<LayerGroup> {
        let stack = self.stack_path();
        let layers = self.config.num_hidden_layers;
        let mut groups: Vec<LayerGroup> = std::iter::once("head".to_string())
            .chain((0..layers).rev().map(|i| format!("{stack}.{i}")))
            .chain(std::iter::once("embeddings".to_string()))
            .map(|name| LayerGroup { name, params: Vec::new() })
            .collect();
        let layer_prefix = format!("{stack}.");
        for (name, _) in self.named_parameters() {
            if self.is_unused(&name) {
                continue;
            }
            let index = if name.starts_with("embeddings.") {
                groups.len() - 1
            } else if let Some(rest) = name.strip_prefix(&layer_prefix) {
                let layer: i64 = rest.split('.').next().and_then(|s| s.parse().ok()).unwrap_or(0);
                (layers - layer) as usize
            } else {
                0
            };
            groups[index].params.push(name);
        }
        groups
    }

    /// `encoder.layer` or (DistilBERT) `transformer.layer`.
    pub fn stack_path(&self) -> &'static str {
        match self.config.arch {
            crate::model::Arch::DistilBert => "transformer.layer",
            _ => "encoder.layer",
        }
    }

    /// Parameters the forward pass never uses (BERT's pooler under mean
    /// pooling, parked heads): they stay frozen so that counts tell the truth.
    pub(in crate::model) fn is_unused(&self, name: &str) -> bool {
        (self.pooling == Pooling::Mean && name.starts_with("pooler.")) || self.parked.iter().any(|h| h.params.iter().any(|p| p == name))
    }

    /// Whether one selector part names parameter `name`.
    fn matches(&self, selector: &str, name: &str) -> bool {
        match selector {
            "all" | "*" => true,
            "embeddings" => name.starts_with("embeddings."),
            "encoder" => name.starts_with(&format!("{}.", self.stack_path())),
            "head" => self.is_head(name),
            "norm" | "LayerNorm" | "layernorm" => name.contains("LayerNorm.") || name.contains("layer_norm."),
            "bias" => name.ends_with(".bias"),
            "lora" => crate::model::LoraConfig::is_lora_variable(name),
            "adapter" => name.contains(".adapter."),
            _ => expand_range(selector).iter().any(|p| module_prefixes(name).any(|m| m == p || glob_match(p, m))),
        }
    }

    /// Parameters above the encoder: the task head, and the pooler when the
    /// head reads it.
    fn is_head(&self, name: &str) -> bool {
        let top = name.split('.').next().unwrap_or("");
        match top {
            "embeddings" | "encoder" | "transformer" => false,
            "pooler" => self.pooling == Pooling::Pooler,
            _ => true,
        }
    }
}