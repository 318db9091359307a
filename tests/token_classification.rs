//! Token classification: word tags from CoNLL or JSON Lines, aligned to
//! the first token of each word, a per-token head that learns, and a save
//! that transformers reads as `...ForTokenClassification`.

mod common;

use std::path::Path;

use tunebook::data::{Targets, TextDataset, TokenizedDataset};

/// Sentences of BBC articles, each word tagged NAME when it is capitalized
/// inside a sentence and O otherwise. MiniLM lower-cases its input, so the
/// model has to learn which words are names from the words and their
/// context, as in named-entity recognition.
fn write_names_conll(path: &Path, sentences: usize) {
    let news = TextDataset::named("bbc_news", &tunebook::runtime::cache_dir()).unwrap().shuffle(5);
    let mut out = String::new();
    let mut n = 0;
    'articles: for text in &news.texts {
        for sentence in text.split(". ") {
            let words: Vec<&str> = sentence.split_whitespace().map(|w| w.trim_matches(|c: char| !c.is_alphanumeric())).filter(|w| !w.is_empty()).collect();
            if !(5..=30).contains(&words.len()) {
                continue;
            }
            for (i, w) in words.iter().enumerate() {
                let tag = if i > 0 && w.chars().next().is_some_and(char::is_uppercase) { "NAME" } else { "O" };
                out.push_str(&format!("{w} {tag}\n"));
            }
            out.push('\n');
            n += 1;
            if n == sentences {
                break 'articles;
            }
        }
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn a_token_head_learns_to_tag_names_and_saves_as_a_token_classifier() {
    let _serial = common::serial();
    let out = tempfile::tempdir().unwrap();
    let conll = out.path().join("names.conll");
    write_names_conll(&conll, 400);
    let saved = out.path().join("tagger");
    let (mut session, _) = common::session();
    let script = format!(
        r#"
        let data = load_dataset("{conll}", #{{ task: "token_classify" }}).split(#{{ val: 100, seed: 1 }});
        let model = load_model("minilm", #{{ task: "token_classify", labels: 2 }});
        model.trainable_layers(3);
        let train = data.train.tokenize(model, #{{ max_len: 40 }}).loader(#{{ batch: 16, shuffle: true }});
        let val = data.val.tokenize(model, #{{ max_len: 40 }}).loader(#{{ batch: 100 }});
        let run = fit(model, train, val, #{{ lr: 2e-4, epochs: 2 }});
        let sentence = "the talks between microsoft and the european commission in brussels ended on monday";
        let tags = predict(model, sentence);
        model.save("{saved}");
        let again = predict(load_model("{saved}"), sentence);
        #{{ scores: evaluate(model, val).per_class, tags: tags, again: again, labels: model.labels, task: model.task, history: run.history }}
        "#,
        conll = conll.display(),
        saved = saved.display()
    );
    let r = session.eval(&script, "tokens.rhai").unwrap_or_else(|e| panic!("{e}")).cast::<rhai::Map>();
    assert_eq!(r["labels"].to_string(), r#"["NAME", "O"]"#, "the head took the data's tag names");
    assert_eq!(r["task"].to_string(), "token_classify");
    let name = r["scores"].clone().into_array().unwrap()[0].clone().cast::<rhai::Map>();
    let f1 = name["f1"].as_float().unwrap();
    eprintln!("NAME precision {}, recall {}, F1 {f1:.3}", name["precision"], name["recall"]);
    assert!(f1 > 0.6, "F1 of NAME tags is {f1:.3}");
    let history = r["history"].clone().into_array().unwrap();
    assert!(history[1].clone().cast::<rhai::Map>().contains_key("val_f1"));

    // One tag per word, from the word's first token.
    let tags = r["tags"].clone().cast::<rhai::Map>();
    let words: Vec<String> = tags["words"].clone().into_array().unwrap().into_iter().map(|w| w.to_string()).collect();
    assert_eq!(words.len(), 13);
    assert_eq!(words[3], "microsoft");
    assert_eq!(tags["tags"].clone().into_array().unwrap().len(), 13);
    assert_eq!(r["tags"].to_string(), r["again"].to_string(), "the reloaded tagger tags the same");

    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(saved.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "BertForTokenClassification");
    assert!(config.get("problem_type").is_none(), "transformers allows no problem_type for token classification");
}

#[test]
fn word_tags_go_to_the_first_token_of_each_word() {
    let _serial = common::serial();
    let dir = tunebook::model::resolve_path("minilm", &tunebook::runtime::cache_dir()).unwrap();
    let tokenizer = tunebook::data::TextTokenizer::load_from_dir(&dir).unwrap();
    let data = TextDataset { name: "t".into(), texts: vec!["Unbelievably good Tunebook".into()], pairs: None, targets: Targets::Tokens(vec![vec![1, 0, 1]]), label_names: vec!["O".into(), "X".into()], notes: Vec::new() };
    let tokens = TokenizedDataset::new(&data, &tokenizer, 32).unwrap();
    let labels = &tokens.token_labels.as_ref().unwrap()[0];
    let ids = &tokens.input_ids[0];
    assert_eq!(ids.len(), labels.len());
    assert!(ids.len() > 5, "both long words split into several pieces: {ids:?}");
    // [CLS], then each word's first piece carries its tag and later pieces -100, then [SEP].
    let tagged: Vec<i64> = labels.iter().copied().filter(|&l| l != -100).collect();
    assert_eq!(tagged, [1, 0, 1]);
    assert_eq!((labels[0], labels[labels.len() - 1], labels[1]), (-100, -100, 1));
    // Truncation keeps the words that fit.
    let short = TokenizedDataset::new(&data, &tokenizer, 3).unwrap();
    assert_eq!(short.token_labels.unwrap()[0], [-100, 1, -100]);
}

#[test]
fn token_data_mistakes_are_located() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let conll = dir.path().join("bad.conll");
    std::fs::write(&conll, "EU B-ORG\nrejects O\n\nGerman\n").unwrap();
    let e = TextDataset::from_conll(&conll).unwrap_err().to_string();
    assert_eq!(e, format!("{}:4: a CoNLL line holds a word and its tag, separated by a space; got \"German\"", conll.display()));
    let jsonl = dir.path().join("bad.jsonl");
    std::fs::write(&jsonl, "{\"tokens\": [\"EU\", \"rejects\"], \"tags\": [\"B-ORG\", \"O\"]}\n{\"tokens\": [\"a\", \"b\"], \"tags\": [\"O\"]}\n").unwrap();
    let (mut session, _) = common::session();
    for (code, expected) in [
        (format!(r#"load_dataset("{}", #{{ text: "tokens", label: "tags", task: "token_classify" }})"#, jsonl.display()), format!("{}:2: 2 words but 1 tags; give one tag per word", jsonl.display())),
        (format!(r#"load_dataset("{}")"#, conll.display()), "is a CoNLL file of tagged words; load it with task: \"token_classify\"".to_string()),
        (r#"image_model(#{ input: [1, 8, 8], labels: 2, task: "token_classify" })"#.to_string(), "token classification tags words of a text".to_string()),
        (
            r#"let d = dataset([#{ text: ["EU", "rejects"], label: ["B-ORG", "O"] }], #{ task: "token_classify" });
               let m = load_model("minilm", #{ labels: 2, pooling: "mean" });
               fit(m, d.tokenize(m).loader(), #{ epochs: 1 })"#
                .to_string(),
            "the data is labelled for token_classify but the model's head is for classify; load the model with task: \"token_classify\"".to_string(),
        ),
    ] {
        let err = session.eval(&code, "tokens.rhai").unwrap_err();
        assert!(err.message.contains(&expected), "{code}:\n  got: {}\n want: {expected}", err.message);
    }
}
