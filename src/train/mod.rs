//! Training: `fit` (the loop, in `fit`), finding a batch that fits, what it is told (`options`), what it
//! reports (`events`) and records (`history`), evaluation, and its parts:
//! optimizers, schedules, losses, metrics, early stopping, checkpoints,
//! gradual unfreezing, fp16 loss scaling, layer statistics, the learning-rate finder and the
//! run as TensorBoard event files.

pub mod batch_size;
pub mod checkpoint;
pub mod early_stopping;
pub mod evaluate;
pub mod events;
pub mod fit;
pub mod history;
pub mod layer_stats;
pub mod loss;
pub mod loss_scale;
pub mod lr_find;
pub mod metrics;
pub mod optim;
pub mod options;
mod run_csv;
mod run_files;
pub mod schedule;
pub mod tensorboard;
mod sync;
pub mod unfreeze;

pub use batch_size::{find_batch_size, BatchFit};
pub use checkpoint::CheckpointOptions;
pub use early_stopping::{EarlyStopping, Monitor};
pub use evaluate::{evaluate, evaluate_detailed, evaluate_detailed_in, EvalDetail};
pub use events::{Silent, StopFlag, TrainEvent, TrainObserver};
pub use fit::fit;
pub use history::{EpochRecord, EvalResult, Sample, StepEval, StepRecord, TrainRun};
pub use layer_stats::LayerStats;
pub use loss::Loss;
pub use lr_find::{lr_find, LrFind, LrFindOptions};
pub use metrics::{Confusion, MultiLabelCounts, RegressionScores};
pub use optim::{Method, Optimizer};
pub use options::{ClassWeights, FitOptions, SampleHook};
pub use schedule::Schedule;
pub use unfreeze::{LayerRates, Unfreezing};
