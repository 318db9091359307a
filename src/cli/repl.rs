//! `tunebook repl`: an interactive prompt over one script session, with
//! line editing and history (rustyline), multi-line input completed the
//! way the kernel's `is_complete` does, and the value of each input shown.

use std::cell::RefCell;
use std::rc::Rc;

use anyhow::Result;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{Editor, Helper};
use tunebook::kernel::Completeness;
use tunebook::script::Session;

/// Tab completion from the session, the same as the kernel's.
struct SessionCompleter(Rc<RefCell<Session>>);

impl Completer for SessionCompleter {
    type Candidate = String;

    fn complete(&self, line: &str, pos: usize, _: &rustyline::Context<'_>) -> rustyline::Result<(usize, Vec<String>)> {
        // rustyline counts bytes; the session counts chars.
        let cursor = line[..pos].chars().count();
        let found = self.0.borrow().complete(line, cursor);
        let start = line.char_indices().nth(found.cursor_start).map_or(line.len(), |(i, _)| i);
        Ok((start, found.matches))
    }
}

impl Hinter for SessionCompleter {
    type Hint = String;
}
impl Highlighter for SessionCompleter {}
impl Validator for SessionCompleter {}
impl Helper for SessionCompleter {}

/// Where input history is kept between sessions.
fn history_file() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".tunebook_history"))
}

/// Reads, evaluates and prints until end of input (Ctrl-D).
pub fn run(session: Session) -> Result<()> {
    let session = Rc::new(RefCell::new(session));
    let mut editor: Editor<SessionCompleter, FileHistory> = Editor::new()?;
    editor.set_helper(Some(SessionCompleter(session.clone())));
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
            let completeness = session.borrow().completeness(&code);
            match completeness {
                Completeness::Incomplete(_) => prompt = ".. ",
                _ => break false,
            }
        };
        if !code.trim().is_empty() {
            let _ = editor.add_history_entry(code.trim_end());
            count += 1;
            // A Ctrl-C during the last input is spent.
            session.borrow().clear_interrupt();
            let outcome = session.borrow_mut().eval(&code, &format!("input {count}"));
            match outcome {
                Ok(value) => {
                    if let Some((plain, _)) = session.borrow().render(&value) {
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
