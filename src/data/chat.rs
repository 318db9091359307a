//! Data for supervised fine-tuning of language models: conversations (chat
//! `messages`), `prompt`/`completion` pairs and `instruction`/`input`/
//! `output` rows, from JSON Lines or built in a script, tokenized with the
//! model's chat template into token ids whose next-token labels cover the
//! answers only (or every token).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value as Json;

use super::{Targets, TextTokenizer, TokenizedDataset};

/// One chat message.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The message's text.
    pub content: String,
}

/// One training example.
#[derive(Debug, Clone, PartialEq)]
pub enum Example {
    /// A conversation; the assistant's turns are what is learned.
    Chat(Vec<Message>),
    /// A raw prompt and its completion (no chat template); the completion
    /// and the end-of-sequence token are learned.
    Completion {
        /// The text given.
        prompt: String,
        /// The text to learn.
        completion: String,
    },
}

/// Examples for supervised fine-tuning.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatDataset {
    /// Where they came from.
    pub name: String,
    /// The examples, in order.
    pub examples: Vec<Example>,
}

/// The row layouts a chat dataset reads, for messages.
pub const LAYOUTS: &str = "`messages` (an array of { role, content }), `prompt` and `completion`, or `instruction` (with optional `input`) and `output`";

fn string_field(row: &Json, key: &str, at: &str) -> Result<String> {
    match row.get(key) {
        Some(Json::String(s)) => Ok(s.clone()),
        Some(other) => bail!("{at}: '{key}' must be a string, found {other}"),
        None => bail!("{at}: '{key}' is missing"),
    }
}

impl Example {
    /// Whether a JSON row is in one of the layouts `from_json` reads.
    pub fn is_example_row(row: &Json) -> bool {
        row.get("messages").is_some() || (row.get("prompt").is_some() && row.get("completion").is_some()) || (row.get("instruction").is_some() && row.get("output").is_some())
    }

    /// Reads one row; `at` says where it is, for errors.
    pub fn from_json(row: &Json, at: &str) -> Result<Self> {
        if let Some(messages) = row.get("messages") {
            let items = messages.as_array().with_context(|| format!("{at}: 'messages' must be an array of {{ role, content }}"))?;
            let messages = items
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let at = format!("{at}, message {}", i + 1);
                    let role = string_field(m, "role", &at)?;
                    if !["system", "user", "assistant"].contains(&role.as_str()) {
                        bail!("{at}: role '{role}' is not system, user or assistant");
                    }
                    Ok(Message { role, content: string_field(m, "content", &at)? })
                })
                .collect::<Result<Vec<_>>>()?;
            if !messages.iter().any(|m| m.role == "assistant") {
                bail!("{at}: the conversation has no assistant message, so there is nothing to learn");
            }
            return Ok(Self::Chat(messages));
        }
        if row.get("prompt").is_some() {
            return Ok(Self::Completion { prompt: string_field(row, "prompt", at)?, completion: string_field(row, "completion", at)? });
        }
        if row.get("instruction").is_some() {
            let instruction = string_field(row, "instruction", at)?;
            let input = match row.get("input") {
                None | Some(Json::Null) => String::new(),
                Some(_) => string_field(row, "input", at)?,
            };
            let user = if input.trim().is_empty() { instruction } else { format!("{instruction}\n\n{input}") };
            return Ok(Self::Chat(vec![Message { role: "user".into(), content: user }, Message { role: "assistant".into(), content: string_field(row, "output", at)? }]));
        }
        bail!("{at}: a row needs {LAYOUTS}")
    }
}

impl ChatDataset {
    /// Reads JSON Lines, one example per line (blank lines skipped).
    pub fn from_jsonl(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut examples = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = format!("{}:{}", path.display(), i + 1);
            let row: Json = serde_json::from_str(line).with_context(|| format!("{at}: not valid JSON"))?;
            examples.push(Example::from_json(&row, &at)?);
        }
        if examples.is_empty() {
            bail!("{} has no rows", path.display());
        }
        Ok(Self { name: path.display().to_string(), examples })
    }

    /// Whether a JSON Lines file holds examples (its first row is one).
    pub fn is_chat_file(path: &Path) -> bool {
        let Ok(text) = std::fs::read_to_string(path) else { return false };
        text.lines().find(|l| !l.trim().is_empty()).and_then(|l| serde_json::from_str::<Json>(l).ok()).is_some_and(|r| Example::is_example_row(&r))
    }

    /// The first `n` examples.
    pub fn take(&self, n: usize) -> Self {
        Self { name: self.name.clone(), examples: self.examples.iter().take(n).cloned().collect() }
    }

    /// The examples at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> Self {
        Self { name: self.name.clone(), examples: idx.iter().map(|&i| self.examples[i].clone()).collect() }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }
}

/// What SFT tokenization needs of a language model: its chat template, its
/// tokenizer and its special tokens. The model layer implements it.
pub trait ChatFormat {
    /// The conversation as text, with the assistant's opening appended when
    /// `add_generation_prompt`.
    fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String>;
    /// The tokenizer (without truncation).
    fn tokenizer(&self) -> &tokenizers::Tokenizer;
    /// The end-of-sequence token's text, appended to raw completions.
    fn eos_text(&self) -> Option<String>;
    /// The id batches are padded with.
    fn pad_id(&self) -> u32;
    /// Whether encoding adds a beginning-of-sequence token.
    fn bos_id(&self) -> Option<u32>;
}

/// Which tokens an SFT example learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainOn {
    /// The assistant's turns (with their end-of-turn token), or a raw completion.
    Answers,
    /// Every token after the first.
    All,
}

/// How `tokenize_examples` cuts and labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SftOptions {
    /// The longest row, in tokens.
    pub max_len: usize,
    /// What is learned.
    pub train_on: TrainOn,
    /// Drop rows longer than `max_len` instead of cutting them.
    pub drop_long: bool,
}

/// A text's token ids with each token's byte span.
fn encode(format: &dyn ChatFormat, text: &str) -> Result<(Vec<u32>, Vec<(usize, usize)>)> {
    let enc = format.tokenizer().encode(text, true).map_err(|e| anyhow::anyhow!("cannot tokenize: {e}"))?;
    let (mut ids, mut offsets) = (enc.get_ids().to_vec(), enc.get_offsets().to_vec());
    if let Some(bos) = format.bos_id() {
        if ids.first() != Some(&bos) {
            ids.insert(0, bos);
            offsets.insert(0, (0, 0));
        }
    }
    Ok((ids, offsets))
}

/// The rendered text of an example and the byte ranges it learns.
fn render_example(format: &dyn ChatFormat, example: &Example) -> Result<(String, Vec<(usize, usize)>)> {
    match example {
        Example::Completion { prompt, completion } => {
            let text = format!("{prompt}{completion}{}", format.eos_text().unwrap_or_default());
            Ok((text.clone(), vec![(prompt.len(), text.len())]))
        }
        Example::Chat(messages) => {
            let full = format.render(messages, false)?;
            let mut spans = Vec::new();
            for (i, _) in messages.iter().enumerate().filter(|(_, m)| m.role == "assistant") {
                // The answer is what the conversation through it adds to the
                // conversation before it with the assistant's opening.
                let before = format.render(&messages[..i], true)?;
                let through = format.render(&messages[..=i], false)?;
                if !through.starts_with(&before) || !full.starts_with(&through) {
                    bail!("the chat template does not render a conversation as the sum of its turns, so the assistant's tokens cannot be found; tokenize with train_on: \"all\"");
                }
                spans.push((before.len(), through.len()));
            }
            Ok((full, spans))
        }
    }
}

/// Next-token labels: row `t` is the id at `t + 1` where that token is
/// learned, else -100 (and -100 at the end), as the loss reads them
/// without shifting.
fn shifted_labels(ids: &[u32], learned: &[bool]) -> Vec<i64> {
    (0..ids.len()).map(|t| if t + 1 < ids.len() && learned[t + 1] { ids[t + 1] as i64 } else { -100 }).collect()
}

/// What tokenizing examples did, besides the rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SftReport {
    /// Rows cut to `max_len`.
    pub truncated: usize,
    /// Rows dropped for being longer than `max_len`.
    pub dropped: usize,
    /// Rows left with no token to learn (their answer was cut off).
    pub without_answer: usize,
}

/// Tokenizes SFT examples for a language model.
pub fn tokenize_examples(data: &ChatDataset, format: &dyn ChatFormat, opts: SftOptions) -> Result<(TokenizedDataset, SftReport)> {
    let mut rows = Vec::new();
    for (i, ex) in data.examples.iter().enumerate() {
        let (text, spans) = render_example(format, ex).with_context(|| format!("example {}", i + 1))?;
        let (ids, offsets) = encode(format, &text)?;
        let learned: Vec<bool> = match opts.train_on {
            TrainOn::All => vec![true; ids.len()],
            TrainOn::Answers => offsets.iter().map(|&(start, end)| end > start && spans.iter().any(|&(a, b)| start >= a && start < b)).collect(),
        };
        rows.push((text, ids, learned));
    }
    build(&data.name, rows, format, opts)
}

/// Tokenizes plain texts for continued pretraining: every token after the
/// first is learned.
pub fn tokenize_texts(name: &str, texts: &[String], format: &dyn ChatFormat, opts: SftOptions) -> Result<(TokenizedDataset, SftReport)> {
    let mut rows = Vec::new();
    for text in texts {
        let (ids, _) = encode(format, text)?;
        let n = ids.len();
        rows.push((text.clone(), ids, vec![true; n]));
    }
    build(name, rows, format, SftOptions { train_on: TrainOn::All, ..opts })
}

fn build(name: &str, rows: Vec<(String, Vec<u32>, Vec<bool>)>, format: &dyn ChatFormat, opts: SftOptions) -> Result<(TokenizedDataset, SftReport)> {
    if opts.max_len < 2 {
        bail!("max_len must be at least 2 tokens, got {}", opts.max_len);
    }
    let mut report = SftReport::default();
    let (mut texts, mut input_ids, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for (text, mut ids, mut learned) in rows {
        if ids.len() > opts.max_len {
            if opts.drop_long {
                report.dropped += 1;
                continue;
            }
            report.truncated += 1;
            ids.truncate(opts.max_len);
            learned.truncate(opts.max_len);
        }
        let row_labels = shifted_labels(&ids, &learned);
        if row_labels.iter().all(|&l| l == -100) {
            report.without_answer += 1;
        }
        texts.push(text);
        input_ids.push(ids);
        labels.push(row_labels);
    }
    if input_ids.is_empty() {
        bail!("every row is longer than max_len {} and was dropped; raise max_len or cut the rows (overflow: \"truncate\")", opts.max_len);
    }
    let n = input_ids.len();
    let tokenizer = TextTokenizer::from_tokenizer(format.tokenizer().clone(), format.pad_id())?;
    let dataset = TokenizedDataset {
        name: name.to_string(),
        token_type_ids: input_ids.iter().map(|r: &Vec<u32>| vec![0; r.len()]).collect(),
        input_ids,
        targets: Targets::NextToken(n),
        token_labels: Some(labels),
        label_names: Vec::new(),
        max_len: opts.max_len,
        pad_id: format.pad_id(),
        truncated: report.truncated,
        texts,
        pairs: None,
        tokenizer,
    };
    Ok((dataset, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_next_learned_token() {
        assert_eq!(shifted_labels(&[5, 6, 7, 8], &[false, false, true, true]), vec![-100, 7, 8, -100]);
    }

    #[test]
    fn rows_in_each_layout_and_bad_rows_say_where() {
        let chat: Json = serde_json::json!({ "messages": [{ "role": "user", "content": "hi" }, { "role": "assistant", "content": "hello" }] });
        assert!(matches!(Example::from_json(&chat, "x").unwrap(), Example::Chat(m) if m.len() == 2));
        let alpaca: Json = serde_json::json!({ "instruction": "Add", "input": "1 and 2", "output": "3" });
        match Example::from_json(&alpaca, "x").unwrap() {
            Example::Chat(m) => assert_eq!(m[0].content, "Add\n\n1 and 2"),
            other => panic!("{other:?}"),
        }
        let bad: Json = serde_json::json!({ "messages": [{ "role": "bot", "content": "x" }] });
        let err = Example::from_json(&bad, "f.jsonl:3").unwrap_err().to_string();
        assert!(err.contains("f.jsonl:3, message 1") && err.contains("'bot'"), "{err}");
    }
}
