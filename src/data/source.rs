//! What a dataset name refers to: a named dataset of the cache, a file by
//! its extension, or a folder by its shape (class subfolders of texts or of
//! images). `load_dataset` asks here, so that the script layer decides
//! nothing about formats.

use std::path::Path;

use anyhow::{bail, Result};

use super::image::{is_image_file, ImageDataset, NAMED_IMAGE_DATASETS};
use super::text::{CsvColumns, FolderOptions, TextDataset, NAMED_DATASETS};
use crate::task::Task;

/// The kinds of dataset a name can refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetSource<'a> {
    /// An image dataset of the bootstrap's cache (`fashion_mnist`).
    NamedImages(&'a str),
    /// A folder with one subfolder of PNG or JPEG images per class.
    ImageFolders(&'a Path),
    /// A text dataset of the bootstrap's cache (`rotten_tomatoes`).
    NamedText(&'a str),
    /// A CoNLL file of tagged words.
    Conll(&'a Path),
    /// A JSON Lines file.
    JsonLines(&'a Path),
    /// A CSV or TSV file.
    Csv(&'a Path),
    /// A folder with one subfolder of text files per class.
    TextFolders(&'a Path),
    /// A Parquet file, glob or folder of shards, or a folder written by
    /// Hugging Face `datasets`' `save_to_disk` (see `columnar`).
    Columnar(&'a str),
}

impl<'a> DatasetSource<'a> {
    /// What `name` refers to; an error lists what it could have been.
    pub fn identify(name: &'a str) -> Result<Self> {
        let path = Path::new(name);
        let has_extension = |ext: &str| path.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext));
        Ok(if NAMED_IMAGE_DATASETS.contains(&name) {
            Self::NamedImages(name)
        } else if super::columnar::is_columnar(name) {
            Self::Columnar(name)
        } else if path.is_dir() && holds_images(path) {
            Self::ImageFolders(path)
        } else if NAMED_DATASETS.contains(&name) {
            Self::NamedText(name)
        } else if path.is_file() && has_extension("conll") {
            Self::Conll(path)
        } else if path.is_file() && has_extension("jsonl") {
            Self::JsonLines(path)
        } else if path.is_file() {
            Self::Csv(path)
        } else if path.is_dir() {
            Self::TextFolders(path)
        } else {
            let mut named: Vec<&str> = NAMED_DATASETS.to_vec();
            named.extend(NAMED_IMAGE_DATASETS);
            bail!("no dataset '{name}': it is neither a named dataset ({}) nor a CSV, TSV, JSON Lines, CoNLL or Parquet file, nor a folder of Parquet files, one written by datasets' save_to_disk, or one with a subfolder per class", named.join(", "))
        })
    }

    /// Whether it holds images rather than texts.
    pub fn is_images(self) -> bool {
        matches!(self, Self::NamedImages(_) | Self::ImageFolders(_))
    }

    /// Reads a text dataset with the columns (and task) asked for, a folder
    /// as `folder` says; an error when the source cannot carry that task's
    /// labels. Empty and whitespace-only texts are kept and noted.
    pub fn load_text(self, cols: &CsvColumns, folder: &FolderOptions, cache: &Path) -> Result<TextDataset> {
        let mut data = self.read_text(cols, folder, cache)?;
        data.note_empty_texts(if matches!(self, Self::TextFolders(_)) { "files" } else { "rows" });
        Ok(data)
    }

    fn read_text(self, cols: &CsvColumns, folder: &FolderOptions, cache: &Path) -> Result<TextDataset> {
        let task = cols.task;
        if *folder != FolderOptions::default() && !matches!(self, Self::TextFolders(_)) {
            bail!("'extensions' and 'recursive' choose the files of a folder of class subfolders; this is not one");
        }
        match self {
            Self::NamedText(name) => {
                if task != Task::Classify {
                    bail!("'{name}' is labelled for classification; task: \"{}\" needs a CSV file with such labels", task.name());
                }
                TextDataset::named(name, cache)
            }
            Self::Conll(path) => {
                if task != Task::Tokens {
                    bail!("{} is a CoNLL file of tagged words; load it with task: \"token_classify\"", path.display());
                }
                TextDataset::from_conll(path)
            }
            Self::JsonLines(path) => TextDataset::from_jsonl(path, cols),
            Self::Csv(path) => TextDataset::from_csv(path, cols),
            Self::TextFolders(path) => {
                if task != Task::Classify {
                    bail!("{} is a folder of class subfolders, which labels each text with one class; task: \"{}\" needs a CSV or JSON Lines file", path.display(), task.name());
                }
                TextDataset::from_folders(path, folder)
            }
            Self::NamedImages(_) | Self::ImageFolders(_) => bail!("this dataset holds images, not texts"),
            Self::Columnar(name) => bail!("{name} may hold several splits or chat examples; load it with columnar::load"),
        }
    }

    /// Reads an image dataset: a named one (its test part when `test`), or
    /// a folder of class subfolders resized to `size` when given.
    pub fn load_images(self, cache: &Path, test: bool, size: Option<(usize, usize)>) -> Result<ImageDataset> {
        match self {
            Self::NamedImages(name) => ImageDataset::named(name, cache, test),
            Self::ImageFolders(path) => ImageDataset::from_folders(path, size),
            _ => bail!("this dataset holds texts, not images"),
        }
    }
}

/// Whether any subfolder of `dir` holds a PNG or JPEG file.
fn holds_images(dir: &Path) -> bool {
    let entries = |d: &Path| std::fs::read_dir(d).into_iter().flatten().filter_map(|e| e.ok().map(|e| e.path()));
    entries(dir).filter(|p| p.is_dir() && !super::text::is_hidden(p)).any(|class| entries(&class).any(|f| is_image_file(&f)))
}
