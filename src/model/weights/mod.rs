//! Weight formats: safetensors and the Hugging Face folder layout (`hf`),
//! and PyTorch's pickled state dicts (`torch_pickle`).

pub mod hf;
pub mod torch_pickle;
