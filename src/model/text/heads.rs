//! The text model's heads: adding named heads that share the backbone
//! (multi-task), switching the active one, and the names heads export
//! under. The head modules themselves are in `model::adapt::heads`.

use std::collections::HashMap;

use anyhow::{bail, Result};

use super::TextModel;
use crate::model::adapt::heads::{check_output_count, Head, ParkedHead, Pooling};
use crate::model::Arch;
use crate::task::Task;

impl TextModel {
    /// The active head's name (`main` for the one the model was loaded with).
    pub fn head_name(&self) -> &str {
        &self.head_name
    }

    /// Every head's name, the active one first.
    pub fn head_names(&self) -> Vec<String> {
        std::iter::once(self.head_name.clone()).chain(self.parked.iter().map(|h| h.name.clone())).collect()
    }

    /// Adds a head named `name` for `labels` and `task` on the shared
    /// backbone. It is parked until `use_head(name)`.
    pub fn add_head(&mut self, name: &str, labels: Vec<String>, pooling: Pooling, task: Task) -> Result<()> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            bail!("a head name uses letters, digits, '_' and '-' only; got '{name}'");
        }
        if self.head_names().iter().any(|n| n == name) {
            bail!("the model already has a head named '{name}'; its heads: {}", self.head_names().join(", "));
        }
        check_output_count(task, labels.len())?;
        if pooling == Pooling::Pooler && self.config.arch == Arch::Bert && !self.vs.variables().keys().any(|n| n.contains("pooler.")) {
            bail!("this model has no pooler; use pooling: \"mean\"");
        }
        let prefix = format!("heads.{name}.");
        let head = Head::new(&(self.vs.root() / "heads" / name), &self.config, pooling, labels.len() as i64, task);
        let mut params: Vec<String> = self.vs.variables().into_keys().filter(|n| n.starts_with(&prefix)).collect();
        params.sort();
        self.set_flags(&params, &vec![false; params.len()]);
        let flags = vec![true; params.len()];
        self.parked.push(ParkedHead { name: name.to_string(), head, labels, task, pooling, params, flags });
        Ok(())
    }

    /// Makes head `name` the active one: `fit`, `evaluate`, `predict` and
    /// `labels` use it from now on. The head it replaces is parked with its
    /// freezing, and gets it back when it returns.
    pub fn use_head(&mut self, name: &str) -> Result<()> {
        if name == self.head_name {
            return Ok(());
        }
        let Some(i) = self.parked.iter().position(|h| h.name == name) else {
            bail!("no head named '{name}'; this model's heads: {}", self.head_names().join(", "));
        };
        let incoming = self.parked.remove(i);
        let outgoing_flags = self.flags(&self.head_params);
        self.set_flags(&self.head_params.clone(), &vec![false; self.head_params.len()]);
        let outgoing = ParkedHead {
            name: std::mem::replace(&mut self.head_name, incoming.name),
            head: std::mem::replace(&mut self.head, incoming.head),
            labels: std::mem::replace(&mut self.labels, incoming.labels),
            task: std::mem::replace(&mut self.task, incoming.task),
            pooling: std::mem::replace(&mut self.pooling, incoming.pooling),
            params: std::mem::replace(&mut self.head_params, incoming.params),
            flags: outgoing_flags,
        };
        self.set_flags(&self.head_params.clone(), &incoming.flags);
        self.parked.insert(i, outgoing);
        Ok(())
    }

    /// Export names of every head's tensors: the active head's under
    /// Hugging Face's names, parked heads' under `heads.<name>.`.
    pub(in crate::model) fn head_export_names(&self) -> HashMap<String, String> {
        let mut names = HashMap::new();
        let active_prefix = format!("heads.{}.", self.head_name);
        for p in &self.head_params {
            names.insert(p.clone(), p.strip_prefix(&active_prefix).unwrap_or(p).to_string());
        }
        for h in &self.parked {
            for p in &h.params {
                let exported = if p.starts_with("heads.") { p.clone() } else { format!("heads.{}.{p}", h.name) };
                names.insert(p.clone(), exported);
            }
        }
        names
    }

    fn flags(&self, names: &[String]) -> Vec<bool> {
        let vars = self.vs.variables();
        names.iter().map(|n| vars.get(n).is_some_and(|t| t.requires_grad())).collect()
    }

    fn set_flags(&self, names: &[String], flags: &[bool]) {
        let vars = self.vs.variables();
        for (n, f) in names.iter().zip(flags) {
            if let Some(t) = vars.get(n) {
                let _ = t.set_requires_grad(*f);
            }
        }
    }
}