//! Data sources, cleaning steps and split kinds, on the cached datasets.

mod common;

use tunebook::data::split::{Share, SplitSpec};
use tunebook::data::{CleanOptions, TextDataset};

fn cache() -> std::path::PathBuf {
    tunebook::runtime::cache_dir()
}

fn counts(data: &TextDataset) -> Vec<usize> {
    data.class_counts().into_iter().map(|(_, n)| n).collect()
}

#[test]
fn a_stratified_split_keeps_every_topics_share_in_each_part() {
    let _serial = common::serial();
    let news = TextDataset::named("bbc_news", &cache()).unwrap();
    let spec = SplitSpec { val: Share::Fraction(0.15), test: Some(Share::Rows(300)), seed: 9, stratify: true };
    let (train, val, test) = news.split_parts(&spec).unwrap();
    let test = test.unwrap();
    assert_eq!((val.len(), test.len(), train.len()), (334, 300, news.len() - 634));
    let all = counts(&news);
    for (part, size) in [(&val, 334.0), (&test, 300.0)] {
        for (have, total) in counts(part).iter().zip(&all) {
            let want = size * *total as f64 / news.len() as f64;
            assert!((*have as f64 - want).abs() <= 1.0, "{have} rows of a class where {want:.1} keep its share");
        }
    }
    // The same seed gives the same parts; texts keep their labels.
    let (again, _, _) = news.split_parts(&spec).unwrap();
    assert_eq!(again.texts, train.texts);
    let label_of = |t: &String| news.texts.iter().position(|x| x == t).map(|i| news.targets.class(i));
    assert!(val.texts.iter().enumerate().all(|(i, t)| label_of(t) == Some(val.targets.class(i))));
}

#[test]
fn k_fold_validates_every_review_exactly_once() {
    let _serial = common::serial();
    let reviews = TextDataset::named("rotten_tomatoes", &cache()).unwrap().clean().0.take(500);
    let folds = reviews.kfold(5, 3, true).unwrap();
    let mut seen: Vec<&String> = folds.iter().flat_map(|(_, v)| v.texts.iter()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 500);
    let share = counts(&reviews)[1] as f64 / 500.0;
    for (train, val) in &folds {
        assert_eq!((train.len(), val.len()), (400, 100));
        let val_share = counts(val)[1] as f64 / 100.0;
        assert!((val_share - share).abs() <= 0.011, "fold share {val_share} against {share}");
    }
}

#[test]
fn cleaning_steps_report_what_they_removed_on_real_reviews() {
    let _serial = common::serial();
    let reviews = TextDataset::named("rotten_tomatoes", &cache()).unwrap();
    let (_, plain) = reviews.clean();
    let opts = CleanOptions { lowercase: true, min_chars: 20, max_chars: Some(150), ..Default::default() };
    let (short, report) = reviews.clean_with(&opts);
    assert_eq!(report.rows_before, reviews.len());
    assert_eq!(report.rows_after, short.len());
    assert!(report.too_short > 0 && report.too_long > 0, "{report}");
    assert_eq!(report.rows_before, report.rows_after + report.empty + report.too_short + report.too_long + report.duplicates);
    assert!(short.texts.iter().all(|t| (20..=150).contains(&t.chars().count()) && *t == t.to_lowercase()));
    // Lower-casing alone makes more texts repeat one another.
    let (_, lowered) = reviews.clean_with(&CleanOptions { lowercase: true, ..Default::default() });
    assert!(lowered.duplicates > plain.duplicates, "{lowered} against {plain}");
    assert!(report.to_string().contains("too short") && report.to_string().contains("too long"), "{report}");
}

#[test]
fn jsonl_tsv_and_in_script_rows_load_with_their_labels() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("reviews.jsonl");
    std::fs::write(
        &jsonl,
        "{\"review\": \"A <b>fine</b> film &amp; a fine cast.\", \"stars\": 4, \"tags\": [\"drama\", \"war\"]}\n\n{\"review\": \"Dull.\", \"stars\": 1.5, \"tags\": []}\n",
    )
    .unwrap();
    let tsv = dir.path().join("reviews.tsv");
    std::fs::write(&tsv, "text\tlabel\n\"Warm,\nfunny\"\tpos\nCold.\tneg\n").unwrap();
    let (mut session, recorded) = common::session();
    let script = format!(
        r#"
        let stars = load_dataset("{jsonl}", #{{ text: "review", label: "stars", task: "regression" }});
        let tags = load_dataset("{jsonl}", #{{ text: "review", label: "tags", task: "multi_label" }}).clean(#{{ strip_html: true }});
        let tsv = load_dataset("{tsv}");
        let rows = dataset([#{{ text: "Loved it.", label: "pos" }}, #{{ text: "Hated it.", label: "neg" }}, #{{ text: "Fine.", label: 3 }}]);
        #{{ stars: stars.head(2).map(|r| r.label), tags: tags.head(2), tsv: tsv.head(2), rows: rows.labels() }}
        "#,
        jsonl = jsonl.display(),
        tsv = tsv.display()
    );
    let r = session.eval(&script, "sources.rhai").unwrap_or_else(|e| panic!("{e}")).cast::<rhai::Map>();
    let strings = |v: &rhai::Dynamic| v.clone().into_array().unwrap().into_iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(strings(&r["stars"]), ["4", "1.5"]);
    let tags = r["tags"].clone().into_array().unwrap();
    let first = tags[0].clone().cast::<rhai::Map>();
    assert_eq!(first["text"].to_string(), "A fine film & a fine cast.");
    assert_eq!(first["label"].to_string(), "drama|war");
    assert_eq!(tags[1].clone().cast::<rhai::Map>()["label"].to_string(), "");
    assert!(recorded.borrow().printed.iter().any(|p| p.contains("HTML stripped in 1")), "{:?}", recorded.borrow().printed);
    let tsv = r["tsv"].clone().into_array().unwrap();
    assert_eq!(tsv[0].clone().cast::<rhai::Map>()["text"].to_string(), "Warm,\nfunny", "a quoted field spans lines");
    let rows = r["rows"].clone().cast::<rhai::Map>();
    assert_eq!((rows["pos"].as_int().unwrap(), rows["neg"].as_int().unwrap(), rows["3"].as_int().unwrap()), (1, 1, 1));

    for (code, expected) in [
        (format!(r#"load_dataset("{}", #{{ text: "text", label: "stars" }})"#, jsonl.display()), format!("{}:1: no field 'text'; fields: review, stars, tags", jsonl.display())),
        (r#"dataset([#{ text: "a" }])"#.to_string(), "dataset: row 1 has no 'label'; it has text".to_string()),
        (r#"dataset([#{ text: "a", label: "x" }, 5])"#.to_string(), "dataset: row 2 must be a map".to_string()),
        (r#"load_dataset("bbc_news").split(#{ val: 0.5, test: 0.5 })"#.to_string(), "leaves a part empty".to_string()),
        (r#"load_dataset("bbc_news").split(#{ val: 0 })"#.to_string(), "option 'val' must be a share between 0 and 1 or a number of rows, got 0".to_string()),
        (r#"load_dataset("bbc_news").kfold(#{ k: 1 })"#.to_string(), "kfold: option 'k' must be between 2 and 1000000, got 1".to_string()),
        (r#"load_dataset("bbc_news").clean(#{ min_chars: 100000 })"#.to_string(), "clean: no rows left".to_string()),
    ] {
        let err = session.eval(&code, "sources.rhai").unwrap_err();
        assert!(err.message.contains(&expected), "{code}:\n  got: {}\n want: {expected}", err.message);
    }
}

/// Trains one step on `pos` and `neg` rows; the warnings fit gave.
fn warnings_for(pos: usize, neg: usize) -> Vec<String> {
    let (mut session, recorded) = common::session();
    let code = format!(
        r#"let model = load_model("minilm", #{{ labels: 2, pooling: "mean" }});
           let rows = [];
           for i in 0..{pos} {{ rows.push(#{{ text: `good film number ${{i}}`, label: "pos" }}); }}
           for i in 0..{neg} {{ rows.push(#{{ text: `bad film number ${{i}}`, label: "neg" }}); }}
           let train = dataset(rows).tokenize(model, #{{ max_len: 8 }}).loader(#{{ batch: 16 }});
           fit(model, train, #{{ epochs: 1, max_steps: 1 }});"#
    );
    let _ = session.eval(&code, "imbalance.rhai").unwrap_or_else(|e| panic!("{e}"));
    let events = &recorded.borrow().events;
    events.iter().filter_map(|e| if let tunebook::train::TrainEvent::Warning(w) = e { Some(w.clone()) } else { None }).collect()
}

#[test]
fn imbalanced_training_classes_get_a_warning_with_shares_and_what_helps() {
    let _serial = common::serial();
    // 71/29 is common in real corpora (spam, churn) and misleads accuracy.
    let warnings = warnings_for(71, 29);
    let warning = warnings.iter().find(|w| w.contains("imbalanced")).unwrap_or_else(|| panic!("no imbalance warning at 71/29: {warnings:?}"));
    assert!(warning.contains("neg: 29, 29.0%; pos: 71, 71.0%"), "{warning}");
    assert!(warning.contains("class_weights: \"balanced\"") && warning.contains("val_f1"), "{warning}");
    let balanced = warnings_for(55, 45);
    assert!(!balanced.iter().any(|w| w.contains("imbalanced")), "55/45 is not imbalanced: {balanced:?}");
}

#[test]
fn a_label_count_that_differs_from_the_datas_classes_is_an_error_naming_them() {
    let _serial = common::serial();
    let (mut session, _) = common::session();
    let err = session
        .eval(
            r#"let model = load_model("minilm", #{ labels: 3 });
               let train = dataset([#{ text: "spam spam", label: "spam" }, #{ text: "hello", label: "ham" }]).tokenize(model, #{ max_len: 8 }).loader(#{ batch: 2 });
               fit(model, train, #{ epochs: 1 });"#,
            "labels.rhai",
        )
        .unwrap_err();
    assert!(err.message.contains("made for 3 labels, but the data has 2 classes (ham, spam)"), "{}", err.message);
    assert!(err.message.contains(r#"labels: 2 (or labels: ["ham", "spam"])"#), "{}", err.message);
}

#[test]
fn wordnet_gives_real_synonyms() {
    let _serial = common::serial();
    let wordnet = tunebook::data::augment::Thesaurus::cached(&cache()).unwrap();
    assert!(wordnet.len() > 100_000, "WordNet 3.0 has about 147,000 words; read {}", wordnet.len());
    assert!(wordnet.synonyms("film").iter().any(|s| s == "movie"), "{:?}", wordnet.synonyms("film"));
    assert!(wordnet.synonyms("Happy").iter().any(|s| s == "glad"));
    assert!(wordnet.synonyms("the").is_empty(), "stop words get no synonyms");
}

#[test]
fn text_augmentation_changes_training_batches_per_epoch_reproducibly() {
    let _serial = common::serial();
    use tch::Device;
    let (mut session, _) = common::session();
    let _ = session
        .eval(
            r#"let model = load_model("minilm", #{ labels: 2, pooling: "mean" });
               let tokens = load_dataset("rotten_tomatoes").clean().take(32).tokenize(model, #{ max_len: 48 });
               let plain = tokens.loader(#{ batch: 32 });
               let varied = tokens.loader(#{ batch: 32, augment: #{ synonyms: 0.2, insert: 0.1, swap: 0.1, delete: 0.1, p: 1.0 } });
               fit(model, varied, plain, #{ epochs: 1, max_steps: 1 });
               [plain, varied]"#,
            "augment.rhai",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let rows: Vec<usize> = (0..32).collect();
    let dir = tunebook::model::resolve_path("minilm", &cache()).unwrap();
    let tokenizer = tunebook::data::TextTokenizer::load_from_dir(&dir).unwrap();
    let reviews = TextDataset::named("rotten_tomatoes", &cache()).unwrap().clean().0.take(32);
    let tokens = std::sync::Arc::new(tunebook::data::TokenizedDataset::new(&reviews, &tokenizer, 48).unwrap());
    let options = tunebook::data::LoaderOptions { batch_size: 32, shuffle: false, seed: 7, drop_last: false, bucket: false, packing: false };
    let plain = tunebook::data::DataLoader::new(tokens.clone(), options.clone()).unwrap();
    let mut varied = tunebook::data::DataLoader::new(tokens, options).unwrap();
    let aug = tunebook::data::augment::TextAugment { synonyms: 0.2, insert: 0.1, swap: 0.1, delete: 0.1, p: 1.0 };
    varied.text_augment = Some((aug, tunebook::data::augment::Thesaurus::cached(&cache()).unwrap()));
    let ids = |b: tunebook::data::Batch| match b.inputs {
        tunebook::data::Inputs::Text { input_ids, .. } => input_ids,
        _ => unreachable!(),
    };
    let base = ids(plain.collate(&rows, Device::Cpu, Some(1)).unwrap());
    let epoch1 = ids(varied.collate(&rows, Device::Cpu, Some(1)).unwrap());
    assert!(!(base.size() == epoch1.size() && base.equal(&epoch1)), "augmentation changed nothing");
    assert!(epoch1.equal(&ids(varied.collate(&rows, Device::Cpu, Some(1)).unwrap())), "the same epoch draws the same changes");
    let epoch2 = ids(varied.collate(&rows, Device::Cpu, Some(2)).unwrap());
    assert!(!(epoch1.size() == epoch2.size() && epoch1.equal(&epoch2)), "each epoch draws new changes");
    assert!(base.equal(&ids(varied.collate(&rows, Device::Cpu, None).unwrap())), "evaluation batches are never augmented");
}

/// Pairs of a BBC headline and the opening of a story: `match` when the
/// story is the headline's own, `mismatch` when it is another article's
/// (half of each), as in headline-body stance data.
fn write_headline_pairs(path: &std::path::Path, rows: usize) {
    let news = TextDataset::named("bbc_news", &cache()).unwrap().shuffle(21);
    let headline = |i: usize| news.texts[i].lines().next().unwrap_or("").trim().to_string();
    let opening = |i: usize| news.texts[i].lines().skip(1).flat_map(str::split_whitespace).take(25).collect::<Vec<_>>().join(" ");
    let mut w = csv::Writer::from_path(path).unwrap();
    w.write_record(["headline", "story", "relation"]).unwrap();
    for i in 0..rows {
        let (story, label) = if i % 2 == 0 { (i, "match") } else { ((i * 7 + 11) % news.len(), "mismatch") };
        w.write_record([headline(i), opening(story), label.to_string()]).unwrap();
    }
    w.flush().unwrap();
}

#[test]
fn sentence_pairs_tokenize_as_two_segments_and_train() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("pairs.csv");
    write_headline_pairs(&csv, 480);
    let cols = tunebook::data::CsvColumns { text: "headline".into(), labels: vec!["relation".into()], task: tunebook::task::Task::Classify, separator: "|".into(), pair: Some("story".into()), labels_optional: false, text_named: true, labels_named: true };
    let data = TextDataset::from_csv(&csv, &cols).unwrap();
    let model_dir = tunebook::model::resolve_path("minilm", &cache()).unwrap();
    let tokenizer = tunebook::data::TextTokenizer::load_from_dir(&model_dir).unwrap();
    let tokens = tunebook::data::TokenizedDataset::new(&data.take(1), &tokenizer, 24).unwrap();
    let (ids, types) = (&tokens.input_ids[0], &tokens.token_type_ids[0]);
    assert_eq!(ids.len(), 24, "the longer text is cut to fit max_len");
    let seps: Vec<usize> = ids.iter().enumerate().filter(|(_, &t)| t == 102).map(|(i, _)| i).collect();
    assert_eq!(seps.len(), 2, "[CLS] first [SEP] second [SEP]: {ids:?}");
    assert!(types[..=seps[0]].iter().all(|&t| t == 0) && types[seps[0] + 1..].iter().all(|&t| t == 1), "{types:?}");

    let (mut session, _) = common::session();
    let script = format!(
        r#"let data = load_dataset("{csv}", #{{ text: "headline", pair: "story", label: "relation" }}).clean().split(#{{ val: 96, seed: 1, stratify: true }});
           let model = load_model("minilm", #{{ labels: 2, pooling: "pooler" }});
           model.trainable_layers(4);
           let run = fit(model, data.train.tokenize(model, #{{ max_len: 64 }}).loader(#{{ batch: 16, shuffle: true }}),
                         data.val.tokenize(model, #{{ max_len: 64 }}).loader(#{{ batch: 96 }}), #{{ lr: 1e-4, epochs: 3 }});
           let p = predict(model, [["Shares in the bank rose after profits beat forecasts", "The central bank raised interest rates again"]]);
           #{{ acc: run.best_val_accuracy, first: data.train.head(1), p: p }}"#,
        csv = csv.display()
    );
    let r = session.eval(&script, "pairs.rhai").unwrap_or_else(|e| panic!("{e}")).cast::<rhai::Map>();
    let acc = r["acc"].as_float().unwrap();
    eprintln!("headline-story pairs: best validation accuracy {acc:.3}");
    assert!(acc > 0.7, "validation accuracy {acc:.3} on balanced pairs (chance 0.5)");
    assert!(r["first"].clone().into_array().unwrap()[0].clone().cast::<rhai::Map>().contains_key("pair"));
    assert_eq!(r["p"].clone().into_array().unwrap().len(), 1);
}

#[test]
fn folders_of_png_images_and_of_text_files_load_by_class_and_missing_labels_are_reported() {
    let _serial = common::serial();
    // Fashion-MNIST images written as PNG files (lossless) come back pixel for pixel.
    let fashion = tunebook::data::image::ImageDataset::named("fashion_mnist", &cache(), true).unwrap().take(40);
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    let mut expected: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..fashion.len() {
        let class = fashion.targets.describe_row(i, &fashion.label_names).replace('/', "-");
        std::fs::create_dir_all(images.join(&class)).unwrap();
        let file = images.join(&class).join(format!("{i:03}.png"));
        image::GrayImage::from_raw(28, 28, fashion.image(i).to_vec()).unwrap().save(&file).unwrap();
        expected.push((format!("{class}/{i:03}"), fashion.image(i).to_vec()));
    }
    // Classes and files in sorted order, as the loader reads them.
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    let texts = dir.path().join("texts");
    for (class, body) in [("ham", "See you at lunch."), ("spam", "WIN A PRIZE NOW")] {
        std::fs::create_dir_all(texts.join(class)).unwrap();
        std::fs::write(texts.join(class).join("1.txt"), body).unwrap();
    }
    std::fs::write(texts.join("spam/2.txt"), b"Caf\xe9 offer\n").unwrap();
    let tsv = dir.path().join("partly.tsv");
    std::fs::write(&tsv, "text\tlabel\nGood.\tpos\nNo label here.\t\nBad.\tneg\n\t\n").unwrap();
    let (mut session, recorded) = common::session();
    let script = format!(
        r#"
        let images = load_dataset("{images}");
        let resized = load_dataset("{images}", #{{ size: [14, 20] }});
        let texts = load_dataset("{texts}");
        let partly = load_dataset("{tsv}");
        [images.len(), resized.stats(), texts.labels(), texts.head(3).map(|r| r.text), partly.len(), images.to_string()]
        "#,
        images = images.display(),
        texts = texts.display(),
        tsv = tsv.display()
    );
    let parts = session.eval(&script, "folders.rhai").unwrap_or_else(|e| panic!("{e}")).into_array().unwrap();
    assert_eq!(parts[0].as_int().unwrap(), 40);
    let loaded = parts[5].to_string();
    assert!(loaded.to_string().contains("40 images of 1x28x28"), "{loaded}");
    let labels = parts[2].clone().cast::<rhai::Map>();
    assert_eq!((labels["ham"].as_int().unwrap(), labels["spam"].as_int().unwrap()), (1, 2));
    let bodies: Vec<String> = parts[3].clone().into_array().unwrap().into_iter().map(|t| t.to_string()).collect();
    assert_eq!(bodies, ["See you at lunch.", "WIN A PRIZE NOW", "Café offer\n"], "the Latin-1 file is repaired");
    assert_eq!(parts[4].as_int().unwrap(), 2, "the two rows without a label are dropped");
    let errors = recorded.borrow().errors.join("\n");
    assert!(errors.contains("dropped 2 rows without a label (lines 3, 5)"), "{errors}");
    assert!(errors.contains("1 file is not UTF-8, read as Latin-1: ") && errors.contains("2.txt"), "{errors}");
    // Pixel for pixel against the source images.
    let folder = tunebook::data::image::ImageDataset::from_folders(&images, None).unwrap();
    for (k, (name, pixels)) in expected.iter().enumerate() {
        assert_eq!(folder.image(k), pixels.as_slice(), "{name}");
    }
    for (code, want) in [
        (format!(r#"load_dataset("{}", #{{ size: 2 }})"#, images.display()), "'size' is a side in pixels"),
        (format!(r#"load_dataset("{}", #{{ text: "t" }})"#, images.display()), "is a folder of images; option 'text' is for text"),
        (format!(r#"load_dataset("{}", #{{ size: 8 }})"#, texts.display()), "'size' resizes the images of a folder of images"),
    ] {
        let err = session.eval(&code, "folders.rhai").unwrap_err();
        assert!(err.message.contains(want), "{code}: {}", err.message);
    }
}


#[test]
fn length_buckets_cut_padding_and_still_cover_every_row_once_per_epoch() {
    let _serial = common::serial();
    let dir = tunebook::model::resolve_path("minilm", &cache()).unwrap();
    let tokenizer = tunebook::data::TextTokenizer::load_from_dir(&dir).unwrap();
    let reviews = TextDataset::named("rotten_tomatoes", &cache()).unwrap().clean().0.take(2000);
    let tokens = std::sync::Arc::new(tunebook::data::TokenizedDataset::new(&reviews, &tokenizer, 128).unwrap());
    let options = |bucket| tunebook::data::LoaderOptions { batch_size: 16, shuffle: true, seed: 5, drop_last: true, bucket, packing: false };
    let plain = tunebook::data::DataLoader::new(tokens.clone(), options(false)).unwrap();
    let bucketed = tunebook::data::DataLoader::new(tokens, options(true)).unwrap();
    let (before, after) = (plain.padding_share(1), bucketed.padding_share(1));
    assert!(after < before / 3.0, "padding {before:.3} -> {after:.3}");
    for epoch in [1, 2] {
        let batches = bucketed.batch_indices(epoch);
        assert_eq!(batches.len(), bucketed.len());
        assert!(batches.iter().all(|b| b.len() == 16), "drop_last leaves whole batches only");
        let mut seen: Vec<usize> = batches.concat();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 2000 / 16 * 16, "no row twice, none lost but the dropped tail");
    }
    assert_eq!(bucketed.batch_indices(1), bucketed.batch_indices(1), "reproducible");
    assert_ne!(bucketed.batch_indices(1), bucketed.batch_indices(2), "each epoch differs");
    // Neighbouring batches are not all short-then-long: the batch order is shuffled.
    let longest: Vec<usize> = bucketed.batch_indices(1).iter().map(|b| b.iter().map(|&i| plain_len(&bucketed, i)).max().unwrap()).collect();
    assert!(longest.windows(2).filter(|w| w[1] < w[0]).count() > longest.len() / 4, "{longest:?}");
}

fn plain_len(loader: &tunebook::data::DataLoader, i: usize) -> usize {
    match &loader.source {
        tunebook::data::LoaderSource::Text(t) => t.input_ids[i].len(),
        _ => unreachable!(),
    }
}

#[test]
fn the_loader_thread_delivers_every_batch_in_order_and_stops_when_dropped() {
    let _serial = common::serial();
    use std::sync::Arc;
    use tunebook::data::image::{Augment, ImageDataset, ImageSet, ImageTransform};
    use tunebook::data::{DataLoader, Inputs, LoaderOptions, LoaderSource};
    let digits = ImageDataset::named("mnist", &cache(), false).unwrap().shuffle(1).take(100);
    let augment = Augment { crop_padding: 2, flip: true, rotate: 10.0, ..Default::default() };
    let set = ImageSet { data: Arc::new(digits), transform: ImageTransform::new(None, augment) };
    let options = LoaderOptions { batch_size: 16, shuffle: true, seed: 3, drop_last: false, bucket: false, packing: false };
    let loader = DataLoader::over(LoaderSource::Images(Arc::new(set)), options).unwrap();
    let batches = loader.batch_indices(2);
    let mut prefetched = loader.prefetch(batches.clone(), Some(2), 2, tch::Device::Cpu).unwrap();
    for rows in &batches {
        let got = prefetched.next_batch().unwrap().expect("a batch for every row list");
        let want = loader.collate(rows, tch::Device::Cpu, Some(2)).unwrap();
        match (&got.inputs, &want.inputs) {
            (Inputs::Images(a), Inputs::Images(b)) => assert!(a.equal(b), "the same augmented pixels as collating here"),
            _ => unreachable!(),
        }
        assert!(got.labels.equal(&want.labels));
    }
    assert!(prefetched.next_batch().unwrap().is_none());
    // Dropped after one batch of seven: dropping joins the loader thread,
    // which must stop instead of hanging on its full channel.
    let mut early = loader.prefetch(batches, Some(2), 1, tch::Device::Cpu).unwrap();
    assert!(early.next_batch().unwrap().is_some());
    let (joined, on_join) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(early);
        let _ = joined.send(());
    });
    assert!(on_join.recv_timeout(std::time::Duration::from_secs(60)).is_ok(), "the loader thread was still running a minute after the drop");
}

#[test]
fn a_class_folder_is_read_by_extension_with_each_kind_of_skipped_file_said_once() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for class in ["ham", "spam"] {
        std::fs::create_dir_all(root.join(class).join("archive")).unwrap();
        for i in 0..3 {
            std::fs::write(root.join(class).join(format!("{i}.txt")), format!("{class} message {i}")).unwrap();
            // The corpus ships each document twice: as text and as JSON.
            std::fs::write(root.join(class).join(format!("{i}.json")), format!("{{\"text\": \"{class} message {i}\"}}")).unwrap();
        }
        std::fs::write(root.join(class).join(".DS_Store"), [0u8, 1, 2, 0]).unwrap();
        std::fs::write(root.join(class).join("archive").join("old.txt"), format!("an old {class} message")).unwrap();
    }
    std::fs::create_dir_all(root.join(".git")).unwrap();
    // UTF-16 with a byte-order mark, as Windows tools write it.
    let utf16: Vec<u8> = [0xFF, 0xFE].into_iter().chain("héllo wörld".encode_utf16().flat_map(|u| u.to_le_bytes())).collect();
    std::fs::write(root.join("ham/utf16.txt"), utf16).unwrap();
    std::fs::write(root.join("spam/image.txt"), [0x89, b'P', b'N', b'G', 0, 0, 0, 13]).unwrap();
    std::fs::write(root.join("spam/latin1.txt"), [b'c', b'a', 0xE9]).unwrap();
    std::fs::write(root.join("spam/empty.txt"), "  \n").unwrap();

    let (mut session, recorded) = common::session();
    let path = root.display().to_string();
    let rows = session.eval(&format!(r#"let d = load_dataset("{path}"); print(d.labels()); d.len()"#), "folder.rhai").unwrap_or_else(|e| panic!("{e}"));
    // 3 .txt per class, the UTF-16 file, the Latin-1 file and the empty one; not the JSON twins, hidden files, nested or binary files.
    assert_eq!(rows.as_int().unwrap(), 3 + 3 + 1 + 1 + 1);
    let printed = recorded.borrow().printed.join("\n");
    assert!(printed.contains(r#""ham": 4"#) && printed.contains(r#""spam": 5"#), "{printed}");
    let notes = recorded.borrow().errors.clone();
    let one = |needle: &str| {
        let found: Vec<&String> = notes.iter().filter(|n| n.contains(needle)).collect();
        assert_eq!(found.len(), 1, "one note with {needle:?}: {notes:#?}");
        found[0].clone()
    };
    assert!(one("skipped 6 .json files").contains(r#"extensions: ["txt", "json"]"#));
    assert!(one("nested folders").contains("recursive: true"));
    assert!(one("binary file").contains("image.txt"));
    assert!(one("read as Latin-1").contains("latin1.txt"));
    assert!(one("empty or whitespace only").starts_with("note: 1 files of 9"));
    assert_eq!(notes.len(), 5, "{notes:#?}");
    assert!(!notes.iter().any(|n| n.contains("DS_Store") || n.contains(".git")), "hidden files are not mentioned: {notes:#?}");
    let texts = session.eval(r#"d.head(20).map(|r| r.text)"#, "texts.rhai").unwrap().into_array().unwrap();
    assert!(texts.iter().any(|t| t.to_string() == "héllo wörld"), "UTF-16 is decoded: {texts:?}");

    let rows = session.eval(&format!(r#"load_dataset("{path}", #{{ recursive: true, extensions: ["txt", ".JSON"] }}).len()"#), "all.rhai").unwrap();
    assert_eq!(rows.as_int().unwrap(), 9 + 6 + 2, "JSON twins and the nested files are read when asked");
}

#[test]
fn a_split_that_puts_one_text_on_both_sides_says_so() {
    let _serial = common::serial();
    let (mut session, recorded) = common::session();
    let _ = session
        .eval(
            r#"let rows = [];
               for i in 0..40 { rows.push(#{ text: `message ${i % 20}`, label: if i % 2 == 0 { "a" } else { "b" } }); }
               let parts = dataset(rows).split(#{ val: 0.25, seed: 1 });"#,
            "dupes.rhai",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let notes = recorded.borrow().errors.join("\n");
    assert!(notes.contains("of the 10 val rows") && notes.contains("same text as a train row"), "{notes}");
}

#[test]
fn hugging_face_column_names_are_found_and_integer_classes_sort_by_number() {
    use tunebook::data::{CsvColumns, Targets};
    let dir = tempfile::tempdir().unwrap();
    let (csv, jsonl) = (dir.path().join("glue.csv"), dir.path().join("glue.jsonl"));
    let (mut table, mut lines) = ("idx,sentence,labels\n".to_string(), String::new());
    for i in 0..24 {
        let label = [2, 10, 1][i % 3];
        table += &format!("{i},sentence number {i},{label}\n");
        lines += &format!("{{\"idx\": {i}, \"sentence\": \"sentence number {i}\", \"labels\": {label}}}\n");
    }
    std::fs::write(&csv, table).unwrap();
    std::fs::write(&jsonl, lines).unwrap();
    // As load_dataset makes them when no column is named.
    let defaults = CsvColumns { text: "text".into(), labels: vec!["label".into()], task: tunebook::task::Task::Classify, separator: "|".into(), pair: None, labels_optional: true, text_named: false, labels_named: false };
    for data in [TextDataset::from_csv(&csv, &defaults).unwrap(), TextDataset::from_jsonl(&jsonl, &defaults).unwrap()] {
        // 2 before 10: by number, not as text ("10" < "2").
        assert_eq!(data.label_names, ["1", "2", "10"]);
        assert_eq!(data.texts[4], "sentence number 4");
        assert_eq!(data.targets, Targets::Classes((0..24).map(|i| [1, 2, 0][i % 3]).collect()));
    }
    // A column the user named is not replaced by a usual name.
    let named = CsvColumns { text_named: true, ..defaults.clone() };
    let err = TextDataset::from_csv(&csv, &named).unwrap_err().to_string();
    assert!(err.contains("no column 'text'; columns: idx, sentence, labels"), "{err}");
}
