//! Turning panics into reported errors: every entry point (kernel handlers,
//! script functions, the command line) catches them and says so.

use std::any::Any;

/// What every report of a caught panic ends with.
pub const BUG_REPORT_HINT: &str = "if your input does not explain it, this is a bug in Tunebook: please report it to the Tunebook developers with the code that triggered it";

/// The message a panic carried.
pub fn panic_text(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown internal error".into())
}
