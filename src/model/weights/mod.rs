//! Weight formats: safetensors and the Hugging Face folder layout (`hf`),
//! PyTorch's pickled state dicts (`torch_pickle`), and llama.cpp's GGUF
//! (`gguf`).

pub mod gguf;
pub mod hf;
pub mod torch_pickle;
