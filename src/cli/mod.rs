//! The command line's own pieces: the terminal host (which renders training
//! with `render::TerminalProgress`), the launcher of data-parallel runs, the
//! REPL and `tunebook doctor`.

pub mod doctor;
pub mod host;
pub mod launch;
pub mod repl;
