//! What fine-tuning adds to a pretrained model: freezing by selector
//! (`freeze`), task heads (`heads`), and LoRA updates and bottleneck
//! adapters (`peft`).

pub mod freeze;
pub mod heads;
pub mod peft;
