//! `tunebook repl`: an interactive prompt over one script session, with
//! line editing and history (rustyline), multi-line input completed the
//! way the kernel's `is_complete` does, and the value of each input shown.

use anyhow::Result;
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;
use tunebook::kernel::Completeness;
use tunebook::script::Session;

/// Where input history is kept between sessions.
fn history_file() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".tunebook_history"))
}

/// Reads, evaluates and prints until end of input (Ctrl-D).
pub fn run(mut session: Session) -> Result<()> {
    let mut editor = DefaultEditor::new()?;
    let history = history_file();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    eprintln!("Tunebook {}: Rhai with the fine-tuning API. help(\"fit\") shows a function, Ctrl-C stops training, Ctrl-D quits.", env!("CARGO_PKG_VERSION"));
    let mut count = 0;
    loop {
        let mut code = String::new();
        let mut prompt = ">> ";
        let finished = loop {
            match editor.readline(prompt) {
                Ok(line) => {
                    code.push_str(&line);
                    code.push('\n');
                }
                // Ctrl-C at the prompt drops what was typed.
                Err(ReadlineError::Interrupted) => {
                    code.clear();
                    break false;
                }
                Err(ReadlineError::Eof) => break true,
                Err(e) => return Err(e.into()),
            }
            match session.completeness(&code) {
                Completeness::Incomplete(_) => prompt = ".. ",
                _ => break false,
            }
        };
        if !code.trim().is_empty() {
            let _ = editor.add_history_entry(code.trim_end());
            count += 1;
            match session.eval(&code, &format!("input {count}")) {
                Ok(value) => {
                    if let Some((plain, _)) = session.render(&value) {
                        println!("{plain}");
                    }
                }
                Err(e) => eprintln!("error: {e}"),
            }
        }
        if finished {
            break;
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}
