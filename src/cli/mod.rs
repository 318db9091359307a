//! The command line's own pieces: the terminal renderer of training events
//! and `tunebook doctor`.

pub mod doctor;
pub mod progress;
