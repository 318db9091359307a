//! Datasets: loading, cleaning, splitting, tokenizing and batching.

pub mod augment;
pub mod chat;
pub mod clean;
pub mod columnar;
pub mod image;
mod loader;
pub mod source;
pub mod split;
pub mod stream;
mod targets;
pub mod text;
pub mod tokenizer;
pub mod transforms;

pub use targets::Targets;
pub use chat::{ChatDataset, ChatFormat, Example, Message, SftOptions, SftReport, TrainOn};
pub use loader::{Batch, DataLoader, Inputs, LoaderOptions, LoaderSource, Packing, Prefetch, StreamedTokens, TokenizedDataset};
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

/// The share of the rows in the most common class: the accuracy of always
/// guessing it, which a classifier has to beat to have learned anything.
/// `None` without rows.
pub fn majority_share(class_counts: &[(String, usize)]) -> Option<f64> {
    let total: usize = class_counts.iter().map(|(_, n)| n).sum();
    let largest = class_counts.iter().map(|(_, n)| *n).max()?;
    (total > 0).then(|| largest as f64 / total as f64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_majority_share_is_the_largest_class_over_all_rows() {
        let counts = |c: &[usize]| c.iter().enumerate().map(|(i, &n)| (format!("c{i}"), n)).collect::<Vec<_>>();
        assert_eq!(super::majority_share(&counts(&[3, 1])), Some(0.75));
        assert_eq!(super::majority_share(&counts(&[2, 5, 3])), Some(0.5));
        assert_eq!(super::majority_share(&counts(&[0, 0])), None);
        assert_eq!(super::majority_share(&[]), None);
    }
}
