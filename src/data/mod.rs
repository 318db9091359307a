//! Datasets: loading, cleaning, splitting, tokenizing and batching.

pub mod augment;
pub mod clean;
pub mod image;
mod loader;
pub mod source;
pub mod split;
mod targets;
pub mod text;
pub mod tokenizer;

pub use targets::Targets;
pub use loader::{Batch, DataLoader, Inputs, LoaderOptions, LoaderSource, Prefetch, TokenizedDataset};
pub use clean::{CleanOptions, CleanReport};
pub use source::DatasetSource;
pub use text::{CsvColumns, TextDataset, NAMED_DATASETS};
pub use tokenizer::TextTokenizer;

/// The class subfolders of a dataset folder (one per class, at least two),
/// in sorted order; `what` names what they hold, for the error.
pub(crate) fn class_folders(dir: &std::path::Path, what: &str) -> anyhow::Result<Vec<std::path::PathBuf>> {
    use anyhow::Context;
    let mut classes: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && !text::is_hidden(p))
        .collect();
    classes.sort();
    if classes.len() < 2 {
        anyhow::bail!("{} needs one subfolder {what}per class (at least 2); found {}", dir.display(), classes.len());
    }
    Ok(classes)
}

