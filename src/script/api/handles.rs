//! The script's handles to core values: cheap to clone (Rhai clones
//! arguments), shared where a script variable aliases a model. Every API
//! area takes its handle types from here.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use tch::Tensor;

use crate::data::image::ImageDataset;
use crate::data::{DataLoader, TextDataset, TokenizedDataset};
use crate::model::{ImageModel, Learner, TextModel};
use crate::train::{self, TrainRun};

/// A dataset of labelled texts.
#[derive(Clone)]
pub(crate) struct DatasetHandle(pub Rc<TextDataset>);

/// A tokenized dataset, ready for a loader.
#[derive(Clone)]
pub(crate) struct TokensHandle(pub Arc<TokenizedDataset>);

/// Batches of a tokenized dataset.
#[derive(Clone)]
pub(crate) struct LoaderHandle(pub DataLoader);

/// Labelled images.
#[derive(Clone)]
pub(crate) struct ImageDatasetHandle(pub Arc<ImageDataset>);

/// An image network shared between script variables.
pub(crate) type ImageModelHandle = Shared<ImageModel>;

/// A text model shared between script variables.
pub(crate) type ModelHandle = Shared<TextModel>;

/// A script handle to a model that trains (a text or an image model):
/// cloning the handle shares the model. Every method that works through
/// `Learner` is registered once for all kinds, by `register`.
pub(crate) struct Shared<M>(pub Rc<RefCell<M>>);

impl<M> Clone for Shared<M> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<M: Learner> Shared<M> {
    /// A handle to a new model.
    pub(crate) fn new(model: M) -> Self {
        Self(Rc::new(RefCell::new(model)))
    }

    /// Runs `f` on the model.
    pub(super) fn with<T>(&self, f: impl FnOnce(&mut dyn Learner) -> T) -> T {
        f(&mut *self.0.borrow_mut())
    }

    /// Saves the model into a folder; returns its path. In a distributed
    /// run every rank holds the same weights: rank 0 writes. When the
    /// folder cannot be written, the weights are saved to a recovery folder
    /// under `out/recovered/` and the error names it, so that a failed save
    /// at the end of a long run loses nothing.
    pub(super) fn save(&self, path: &str) -> anyhow::Result<String> {
        crate::distributed::main_process_writes(
            || {
                let model = self.0.borrow();
                let error = match model.save(Path::new(path)) {
                    Ok(saved) => return Ok(saved.display().to_string()),
                    Err(e) => e,
                };
                let reason = crate::files::plain_reason(&error);
                let stem = Path::new(path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
                let recovery = (1..).map(|n| Path::new("out/recovered").join(format!("{stem}-{n}"))).find(|p| !p.exists()).expect("a free name");
                match model.save(&recovery) {
                    Ok(saved) => anyhow::bail!(
                        "cannot save the model to {path}: {reason}. The weights are safe in {} (load_model reads it); save to a folder you can write, or fix the cause and save again",
                        saved.display()
                    ),
                    Err(again) => anyhow::bail!("cannot save the model to {path}: {reason}; nor to {}: {}", recovery.display(), crate::files::plain_reason(&again)),
                }
            },
            || path.to_string(),
        )
    }
}

/// What `lr_find` found.
#[derive(Clone)]
pub(crate) struct LrFindHandle(pub Rc<train::LrFind>);

/// The record of a training run.
#[derive(Clone)]
pub(crate) struct RunHandle(pub Rc<TrainRun>);

/// A tensor in a script (always a copy, detached from any model).
pub(crate) struct TensorHandle(pub Tensor);

impl Clone for TensorHandle {
    fn clone(&self) -> Self {
        Self(self.0.shallow_clone())
    }
}
