//! The command line's own pieces: the terminal host and renderer of
//! training events, the REPL and `tunebook doctor`.

pub mod doctor;
pub mod host;
pub mod launch;
pub mod progress;
pub mod repl;
