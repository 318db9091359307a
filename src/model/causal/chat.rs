//! Chat templates: the Jinja template a model ships (in `tokenizer_config.json`,
//! `chat_template.jinja`, or a GGUF's `tokenizer.chat_template`), rendered
//! with minijinja the way transformers' `apply_chat_template` renders it
//! (`trim_blocks`, `lstrip_blocks`, Python string methods, `raise_exception`).

use anyhow::{anyhow, Result};
use minijinja::{context, Environment, Error, ErrorKind};

pub use crate::data::chat::Message;

/// The special tokens a template may print.
#[derive(Debug, Clone, Default)]
pub struct SpecialTokens {
    /// The beginning-of-sequence token's text.
    pub bos: Option<String>,
    /// The end-of-sequence token's text.
    pub eos: Option<String>,
    /// The padding token's text.
    pub pad: Option<String>,
}

/// Renders `template` for `messages`; `add_generation_prompt` appends the
/// opening of the assistant's turn.
pub fn render(template: &str, messages: &[Message], add_generation_prompt: bool, special: &SpecialTokens) -> Result<String> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |message: String| -> Result<String, Error> { Err(Error::new(ErrorKind::InvalidOperation, message)) });
    env.add_function("strftime_now", |format: String| chrono::Local::now().format(&format).to_string());
    env.add_template("chat_template", template).map_err(|e| anyhow!("the model's chat template does not parse: {e}"))?;
    let tmpl = env.get_template("chat_template").map_err(|e| anyhow!("{e}"))?;
    tmpl.render(context! {
        messages => messages,
        add_generation_prompt => add_generation_prompt,
        bos_token => special.bos.clone().unwrap_or_default(),
        eos_token => special.eos.clone().unwrap_or_default(),
        pad_token => special.pad.clone().unwrap_or_default(),
    })
    .map_err(|e| anyhow!("the chat template failed on these messages: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_with_generation_prompt() {
        let t = "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
        let m = vec![Message { role: "user".into(), content: " Hi ".into() }];
        let s = render(t, &m, true, &SpecialTokens::default()).unwrap();
        assert_eq!(s, "<|im_start|>user\n Hi <|im_end|>\n<|im_start|>assistant\n");
    }

    #[test]
    fn python_string_methods_and_raise_exception() {
        let t = "{% if messages[0]['role'] == 'bot' %}{{ raise_exception('bad role') }}{% endif %}{{ messages[0]['content'].strip() }}";
        let ok = render(t, &[Message { role: "user".into(), content: "  x ".into() }], false, &SpecialTokens::default()).unwrap();
        assert_eq!(ok, "x");
        let err = render(t, &[Message { role: "bot".into(), content: "x".into() }], false, &SpecialTokens::default()).unwrap_err();
        assert!(format!("{err:#}").contains("bad role"), "{err:#}");
    }
}
