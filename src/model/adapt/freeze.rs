//! Choosing what trains: the kinds a selector can name, the layer groups
//! that gradual unfreezing and layer-wise learning rates walk from the top
//! of a model down, and the name patterns selectors use.

/// Kinds of parameters a selector can name besides module paths, with what
/// each one covers.
pub const KINDS: &[(&str, &str)] = &[
    ("all", "every parameter"),
    ("embeddings", "the token, position and segment embeddings"),
    ("encoder", "every transformer layer"),
    ("head", "the task head above the encoder (classifier, pre_classifier, and the pooler when the head uses it)"),
    ("norm", "every LayerNorm weight and bias"),
    ("bias", "every bias"),
    ("lora", "the LoRA matrices"),
    ("adapter", "the bottleneck adapters"),
];

/// A group of parameters that trains or freezes together, for gradual
/// unfreezing and layer-wise learning rates.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerGroup {
    /// Its name: `head`, `encoder.layer.5`, ..., `embeddings`.
    pub name: String,
    /// The parameter names in it.
    pub params: Vec<String>,
}

pub(in crate::model) fn kind_names() -> String {
    KINDS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
}

/// `a`, `a.b`, `a.b.c` for `a.b.c`.
pub(in crate::model) fn module_prefixes(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices('.').map(|(i, _)| &name[..i]).chain(std::iter::once(name))
}

/// `encoder.layer.0-3` as the four layer paths; anything else as itself.
pub(in crate::model) fn expand_range(pattern: &str) -> Vec<String> {
    if let Some((head, last)) = pattern.rsplit_once('.') {
        if let Some((a, b)) = last.split_once('-') {
            if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                if a <= b {
                    return (a..=b).map(|i| format!("{head}.{i}")).collect();
                }
            }
        }
    }
    vec![pattern.to_string()]
}
