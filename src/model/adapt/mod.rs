//! What fine-tuning adds to a pretrained model, in parts that any model
//! family uses: the kinds and name patterns of selectors and the layer
//! groups (`freeze`), task heads and pooling (`heads`), and the PEFT
//! method and adapter layout (`peft`). Each model wires them in its own
//! files (`model/text/`, `model/image.rs`).

pub mod freeze;
pub mod heads;
pub mod peft;
