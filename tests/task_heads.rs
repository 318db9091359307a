//! Regression and multi-label heads: data from CSV, the right loss, the
//! task's metrics, predictions, and the task saved as `problem_type`.

mod common;

use std::path::Path;

use tunebook::data::{Targets, TextDataset};

fn map(v: &rhai::Dynamic) -> rhai::Map {
    v.clone().cast::<rhai::Map>()
}

fn float(m: &rhai::Map, key: &str) -> f64 {
    m[key].as_float().unwrap_or_else(|_| panic!("{key} is not a number: {:?}", m.get(key)))
}

/// Review snippets with a sentiment score: 1.0 for fresh, 0.0 for rotten.
fn write_scores_csv(path: &Path, rows: usize) {
    let data = TextDataset::named("rotten_tomatoes", &tunebook::runtime::cache_dir()).unwrap().clean().0.shuffle(3).take(rows);
    let mut w = csv::Writer::from_path(path).unwrap();
    w.write_record(["text", "score"]).unwrap();
    for (i, text) in data.texts.iter().enumerate() {
        let fresh = data.targets.class(i).unwrap() == 1;
        w.write_record([text.as_str(), if fresh { "1.0" } else { "0.0" }]).unwrap();
    }
    w.flush().unwrap();
}

/// Two BBC articles' openings joined into one text, tagged with both
/// topics (one tag when they share it): a document about several topics.
fn write_topics_csv(path: &Path, rows: usize) {
    let news = TextDataset::named("bbc_news", &tunebook::runtime::cache_dir()).unwrap().shuffle(11);
    let opening = |i: usize| news.texts[i].split_whitespace().take(25).collect::<Vec<_>>().join(" ");
    let topic = |i: usize| news.label_names[news.targets.class(i).unwrap() as usize].clone();
    let mut w = csv::Writer::from_path(path).unwrap();
    w.write_record(["text", "topics"]).unwrap();
    for r in 0..rows {
        let (a, b) = (2 * r, 2 * r + 1);
        let mut tags = vec![topic(a), topic(b)];
        tags.dedup();
        w.write_record([format!("{} {}", opening(a), opening(b)), tags.join("|")]).unwrap();
    }
    w.flush().unwrap();
}

#[test]
fn a_regression_head_learns_a_score_reports_r2_and_saves_as_regression() {
    let _serial = common::serial();
    let out = tempfile::tempdir().unwrap();
    let csv = out.path().join("scores.csv");
    write_scores_csv(&csv, 900);
    let saved = out.path().join("scorer");
    let (mut session, _) = common::session();
    let script = format!(
        r#"
        let data = load_dataset("{csv}", #{{ label: "score", task: "regression" }}).split(#{{ val: 0.33, seed: 1 }});
        let model = load_model("minilm", #{{ task: "regression", pooling: "mean" }});
        let train = data.train.tokenize(model, #{{ max_len: 40 }}).loader(#{{ batch: 16, shuffle: true }});
        let val = data.val.tokenize(model, #{{ max_len: 40 }}).loader(#{{ batch: 100 }});
        model.freeze("embeddings");
        let run = fit(model, train, val, #{{ lr: 8e-5, epochs: 2, early_stopping: #{{ metric: "val_r2", patience: 5 }} }});
        let metrics = evaluate(model, val);
        let texts = data.val.head(data.val.len()).map(|r| r.text);
        let truth = data.val.head(data.val.len()).map(|r| parse_float(r.label));
        let preds = predict(model, texts, #{{ max_len: 40 }});
        model.save("{saved}");
        let again = predict(load_model("{saved}"), texts, #{{ max_len: 40 }});
        #{{ r2: run.val_r2, metrics: metrics, preds: preds, truth: truth, again: again, task: model.task,
            labels: model.labels, acc: run.val_accuracy, history: run.history, text: `${{data.train}}` }}
        "#,
        csv = csv.display(),
        saved = saved.display()
    );
    let r = session.eval(&script, "regression.rhai").unwrap_or_else(|e| panic!("{e}"));
    let r = map(&r);
    assert_eq!(r["task"].clone().into_string().unwrap(), "regression");
    assert!(r["acc"].is_unit(), "a regression run has no accuracy");
    assert!(r["text"].clone().into_string().unwrap().contains("regression on score"), "{}", r["text"]);
    // The head took the data's output name.
    assert_eq!(r["labels"].clone().into_array().unwrap()[0].clone().into_string().unwrap(), "score");

    // Learned something: R² above 0 means better than predicting the mean.
    let metrics = map(&r["metrics"]);
    let r2 = float(&r, "r2");
    eprintln!("val R² {r2:.3}, MSE {:.4}, MAE {:.4}", float(&metrics, "mse"), float(&metrics, "mae"));
    assert!(r2 > 0.1, "validation R² is {r2:.3}");
    assert!(!metrics.contains_key("accuracy") && metrics.contains_key("mae"));
    // The validation loss is the MSE of the predictions against the targets.
    assert!((float(&metrics, "loss") - float(&metrics, "mse")).abs() < 1e-5, "loss {} against MSE {}", float(&metrics, "loss"), float(&metrics, "mse"));
    let preds = r["preds"].clone().into_array().unwrap();
    let truth: Vec<f64> = r["truth"].clone().into_array().unwrap().iter().map(|x| x.as_float().unwrap()).collect();
    let values: Vec<f64> = preds.iter().map(|p| float(&map(p), "value")).collect();
    // R² and MSE computed here from the predictions agree with what evaluate reported.
    let n = truth.len() as f64;
    let mse = values.iter().zip(&truth).map(|(p, t)| (p - t).powi(2)).sum::<f64>() / n;
    let mean = truth.iter().sum::<f64>() / n;
    let variance = truth.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / n;
    let r2_here = 1.0 - mse / variance;
    assert!((mse - float(&metrics, "mse")).abs() < 1e-5, "MSE {mse} from the predictions, {} reported", float(&metrics, "mse"));
    assert!((r2_here - float(&metrics, "r2")).abs() < 1e-4, "R² {r2_here} from the predictions, {} reported", float(&metrics, "r2"));
    let history = r["history"].clone().into_array().unwrap();
    assert!(map(&history[0]).contains_key("val_r2"));

    // Saved as Hugging Face's regression, and it reloads to the same values.
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(saved.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["problem_type"], "regression");
    assert_eq!(config["id2label"], serde_json::json!({ "0": "score" }));
    let again: Vec<f64> = r["again"].clone().into_array().unwrap().iter().map(|p| float(&map(p), "value")).collect();
    for (a, b) in values.iter().zip(&again) {
        assert!((a - b).abs() < 1e-5, "reloaded prediction {b} differs from {a}");
    }
}

#[test]
fn a_multi_label_head_finds_every_topic_of_a_text() {
    let _serial = common::serial();
    let out = tempfile::tempdir().unwrap();
    let csv = out.path().join("topics.csv");
    write_topics_csv(&csv, 500);
    let saved = out.path().join("tagger");
    let (mut session, _) = common::session();
    let script = format!(
        r#"
        let data = load_dataset("{csv}", #{{ label: "topics", task: "multi_label" }}).split(#{{ val: 0.3, seed: 2 }});
        let model = load_model("minilm", #{{ task: "multi_label", labels: 5, pooling: "mean" }});
        let train = data.train.tokenize(model, #{{ max_len: 96 }}).loader(#{{ batch: 16, shuffle: true }});
        let val = data.val.tokenize(model, #{{ max_len: 96 }}).loader(#{{ batch: 50 }});
        model.train_only("head");
        let run = fit(model, train, val, #{{ lr: 2e-2, epochs: 4, warmup: 0.0, weight_decay: 0.0 }});
        let metrics = evaluate(model, val);
        let rows = data.val.head(50);
        let first = evaluate(model, data.val.take(50).tokenize(model, #{{ max_len: 96 }}).loader(#{{ batch: 50 }}));
        let preds = predict(model, rows.map(|r| r.text), #{{ max_len: 96 }});
        model.save("{saved}");
        let again = predict(load_model("{saved}"), rows.map(|r| r.text), #{{ max_len: 96 }});
        #{{ metrics: metrics, first: first, preds: preds, truth: rows.map(|r| r.label), again: again, labels: model.labels, data: `${{data.train}}` }}
        "#,
        csv = csv.display(),
        saved = saved.display()
    );
    let r = session.eval(&script, "multi_label.rhai").unwrap_or_else(|e| panic!("{e}"));
    let r = map(&r);
    let labels: Vec<String> = r["labels"].clone().into_array().unwrap().into_iter().map(|l| l.into_string().unwrap()).collect();
    assert_eq!(labels, ["business", "entertainment", "politics", "sports", "tech"], "the head took the data's label names");
    assert!(r["data"].clone().into_string().unwrap().contains("multi-label"));

    let metrics = map(&r["metrics"]);
    let (f1, exact) = (float(&metrics, "f1"), float(&metrics, "accuracy"));
    eprintln!("val macro F1 {f1:.3}, exact match {exact:.3}, loss {:.4}", float(&metrics, "loss"));
    assert!(f1 > 0.7, "macro F1 over topics is {f1:.3}");
    // Chance of guessing the exact set of 1-2 topics out of 5 is about 1 in 15.
    assert!(exact > 0.3, "exact-match accuracy is {exact:.3}");
    assert_eq!(map(&r["metrics"])["per_class"].clone().into_array().unwrap().len(), 5);

    // The loss is binary cross-entropy of the predicted probabilities; the
    // predicted labels are those at 0.5 or above.
    let preds = r["preds"].clone().into_array().unwrap();
    let truth: Vec<String> = r["truth"].clone().into_array().unwrap().into_iter().map(|t| t.into_string().unwrap()).collect();
    let (mut bce, mut n) = (0.0, 0.0);
    for (p, t) in preds.iter().zip(&truth) {
        let p = map(p);
        let scores = map(&p["scores"]);
        let chosen: Vec<String> = p["labels"].clone().into_array().unwrap().into_iter().map(|l| l.into_string().unwrap()).collect();
        for l in &labels {
            let (prob, target) = (float(&scores, l), t.split('|').any(|x| x == l));
            assert_eq!(chosen.contains(l), prob >= 0.5);
            bce -= if target { prob.ln() } else { (1.0 - prob).ln() };
            n += 1.0;
        }
    }
    let loss = float(&map(&r["first"]), "loss");
    assert!((bce / n - loss).abs() < 1e-5, "BCE of the predictions {} against the evaluation loss {loss}", bce / n);

    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(saved.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["problem_type"], "multi_label_classification");
    let again = r["again"].clone().into_array().unwrap();
    for (a, b) in preds.iter().zip(&again) {
        let (a, b) = (map(&map(a)["scores"]), map(&map(b)["scores"]));
        for l in &labels {
            assert!((float(&a, l) - float(&b, l)).abs() < 1e-5);
        }
    }
}

#[test]
fn csv_targets_are_read_per_task_and_bad_cells_are_located() {
    let _serial = common::serial();
    let out = tempfile::tempdir().unwrap();
    let good = out.path().join("good.csv");
    std::fs::write(&good, "text,a,b,tags\none,1.5,-2,x|y\ntwo,0,3e2,\nthree,7,0.25,y\n").unwrap();
    let read = |labels: &[&str], task| {
        let cols = tunebook::data::CsvColumns { text: "text".into(), labels: labels.iter().map(|s| s.to_string()).collect(), task, separator: "|".into(), pair: None, labels_optional: false, text_named: true, labels_named: true };
        TextDataset::from_csv(&good, &cols)
    };
    use tunebook::task::Task;
    let values = read(&["a", "b"], Task::Regression).unwrap();
    assert_eq!(values.targets, Targets::Values(vec![vec![1.5, -2.0], vec![0.0, 300.0], vec![7.0, 0.25]]));
    assert_eq!(values.label_names, ["a", "b"]);
    let tags = read(&["tags"], Task::MultiLabel).unwrap();
    assert_eq!(tags.label_names, ["x", "y"]);
    assert_eq!(tags.targets, Targets::MultiLabel(vec![vec![1.0, 1.0], vec![0.0, 0.0], vec![0.0, 1.0]]));
    // Split, cleaning and subsets keep the targets with their texts.
    let (train, val) = values.split(0.34, 4).unwrap();
    for part in [&train, &val] {
        for (i, t) in part.texts.iter().enumerate() {
            let j = values.texts.iter().position(|x| x == t).unwrap();
            assert_eq!(part.targets.subset(&[i]), values.targets.subset(&[j]));
        }
    }

    let bad = out.path().join("bad.csv");
    std::fs::write(&bad, "text,score\nfine,1\nbroken,abc\n").unwrap();
    let cols = tunebook::data::CsvColumns { text: "text".into(), labels: vec!["score".into()], task: Task::Regression, separator: "|".into(), pair: None, labels_optional: false, text_named: true, labels_named: true };
    let e = TextDataset::from_csv(&bad, &cols).unwrap_err().to_string();
    assert_eq!(e, format!("{}:3: column 'score' holds 'abc', which is not a number", bad.display()));
    std::fs::write(&bad, "text,x,y\nfine,1,0\nbroken,1,yes\n").unwrap();
    let cols = tunebook::data::CsvColumns { text: "text".into(), labels: vec!["x".into(), "y".into()], task: Task::MultiLabel, separator: "|".into(), pair: None, labels_optional: false, text_named: true, labels_named: true };
    let e = TextDataset::from_csv(&bad, &cols).unwrap_err().to_string();
    assert_eq!(e, format!("{}:3: column 'y' holds 'yes'; a label column holds 0 or 1", bad.display()));
}

#[test]
fn a_task_mismatch_or_a_loss_that_does_not_fit_says_what_to_do() {
    let _serial = common::serial();
    let out = tempfile::tempdir().unwrap();
    let csv = out.path().join("scores.csv");
    write_scores_csv(&csv, 40);
    let (mut session, _) = common::session();
    let setup = format!(
        r#"
        let scores = load_dataset("{csv}", #{{ label: "score", task: "regression" }});
        let classifier = load_model("minilm", #{{ labels: 2, pooling: "mean" }});
        let regressor = load_model("minilm", #{{ task: "regression", pooling: "mean" }});
        let reviews = load_dataset("rotten_tomatoes").take(40);
        let s = scores.tokenize(regressor, #{{ max_len: 16 }}).loader();
        let c = reviews.tokenize(classifier, #{{ max_len: 16 }}).loader();
        "#,
        csv = csv.display()
    );
    for (code, expected) in [
        ("fit(classifier, s, #{ epochs: 1 })", "the data is labelled for regression but the model's head is for classify; load the model with task: \"regression\" and labels: 1"),
        ("fit(regressor, c, #{ epochs: 1 })", "the data is labelled for classify but the model's head is for regression; load the model with task: \"classify\""),
        ("evaluate(regressor, c)", "the data is labelled for classify but the model's head is for regression"),
        ("fit(classifier, c, #{ loss: \"mse\" })", "loss 'mse' does not fit a classify head; valid: cross_entropy"),
        ("fit(regressor, s, #{ loss: \"cross_entropy\" })", "loss 'cross_entropy' does not fit a regression head; valid: mse, mae, huber"),
        ("fit(regressor, s, #{ loss: \"l2\" })", "option 'loss' must be one of cross_entropy, bce, mse, mae, huber"),
        ("fit(regressor, s, s, #{ early_stopping: #{ metric: \"val_accuracy\" } })", "early stopping cannot watch val_accuracy on a regression head; valid: val_loss, val_mae, val_r2"),
        ("fit(regressor, s, #{ class_weights: \"balanced\" })", "class_weights apply to single-label classification; this head is for regression"),
        ("fit(regressor, s, #{ label_smoothing: 0.1 })", "label_smoothing applies to single-label classification"),
        ("load_model(\"minilm\", #{ labels: 1 })", "option 'labels' must be at least 2, got 1; for one number per row use task: \"regression\""),
        ("load_model(\"minilm\", #{ task: \"regress\" })", "option 'task' must be one of classify, multi_label, regression"),
        ("load_dataset(\"rotten_tomatoes\", #{ task: \"regression\" })", "'rotten_tomatoes' is labelled for classification"),
        ("load_dataset(\"rotten_tomatoes\", #{ separator: \";\" })", "'separator' splits a multi-label column; add task: \"multi_label\""),
    ] {
        let err = session.eval(&format!("{setup}{code}"), "tasks.rhai").unwrap_err();
        assert!(err.message.contains(expected), "{code}:\n  got: {}\n want: {expected}", err.message);
        assert!(err.to_string().contains("tasks.rhai:"), "{code}: not located: {err}");
    }
    // MAE and Huber train a regression head.
    for loss in ["mae", "huber"] {
        let v = session.eval(&format!("{setup}fit(regressor, s, #{{ loss: \"{loss}\", epochs: 1, max_steps: 2 }}).steps"), "tasks.rhai").unwrap_or_else(|e| panic!("{loss}: {e}"));
        assert_eq!(v.as_int().unwrap(), 2);
    }
}

#[test]
fn predict_gives_every_class_probability_the_top_k_and_reads_an_unlabelled_dataset() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    common::copy_tiny_bert(&model_dir);
    let csv = dir.path().join("unlabelled.csv");
    std::fs::write(&csv, "text\n\"a good film\"\n\"a bad plot\"\n\"so so\"\n").unwrap();
    let (mut session, recorded) = common::session();
    let code = format!(
        r#"let model = load_model("{}", #{{ labels: ["bad", "good", "meh"] }});
           let data = load_dataset("{}");
           let ps = predict(model, data, #{{ top_k: 2 }});
           let same = predict(model, ["a good film", "a bad plot", "so so"]);
           [ps, same]"#,
        model_dir.display(),
        csv.display()
    );
    let out = session.eval(&code, "predict.rhai").unwrap_or_else(|e| panic!("{e}")).into_array().unwrap();
    assert!(recorded.borrow().errors.iter().any(|n| n.contains("no 'label' column, so its 3 rows have no labels")), "{:?}", recorded.borrow().errors);
    let preds = out[0].clone().into_array().unwrap();
    let plain = out[1].clone().into_array().unwrap();
    assert_eq!(preds.len(), 3);
    for (i, (p, q)) in preds.iter().zip(&plain).enumerate() {
        let p = p.clone().cast::<rhai::Map>();
        let scores = p["scores"].clone().cast::<rhai::Map>();
        let probs: Vec<(String, f64)> = scores.iter().map(|(k, v)| (k.to_string(), v.as_float().unwrap())).collect();
        assert_eq!(probs.len(), 3, "every class: {probs:?}");
        assert!((probs.iter().map(|(_, x)| x).sum::<f64>() - 1.0).abs() < 1e-9, "a distribution: {probs:?}");
        let best = probs.iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
        assert_eq!(p["label"].to_string(), best.0);
        assert_eq!(p["score"].as_float().unwrap(), best.1);
        let top = p["top"].clone().into_array().unwrap();
        assert_eq!(top.len(), 2);
        let top: Vec<rhai::Map> = top.into_iter().map(|t| t.cast::<rhai::Map>()).collect();
        assert_eq!(top[0]["label"].to_string(), best.0);
        assert!(top[0]["score"].as_float().unwrap() >= top[1]["score"].as_float().unwrap());
        assert_eq!(p["text"].to_string(), ["a good film", "a bad plot", "so so"][i]);
        let q = q.clone().cast::<rhai::Map>();
        assert_eq!(q["scores"].to_string(), p["scores"].to_string(), "a dataset predicts as its texts do");
    }
    let err = session.eval("fit(model, data.tokenize(model, #{ max_len: 16 }).loader(), #{ epochs: 1 })", "fit.rhai").unwrap_err();
    assert!(err.message.contains("has no labels: it is data to predict on"), "{}", err.message);
    let err = session.eval(r#"predict(model, ["x"], #{ threshold: 0.3 })"#, "threshold.rhai").unwrap_err();
    assert!(err.message.contains("threshold picks the labels of a multi_label head"), "{}", err.message);

    let code = format!(r#"let tags = load_model("{}", #{{ task: "multi_label", labels: 3 }}); [predict(tags, "x", #{{ threshold: 0.0 }}).labels.len(), predict(tags, "x", #{{ threshold: 1.0 }}).labels.len()]"#, model_dir.display());
    let counts = session.eval(&code, "multi.rhai").unwrap_or_else(|e| panic!("{e}")).into_array().unwrap();
    assert_eq!(counts.iter().map(|c| c.as_int().unwrap()).collect::<Vec<_>>(), [3, 0], "threshold 0 picks every label, 1 none");

    let folder = dir.path().join("inbox");
    std::fs::create_dir_all(&folder).unwrap();
    for (i, t) in ["a good film", "a bad plot"].iter().enumerate() {
        std::fs::write(folder.join(format!("{i}.txt")), t).unwrap();
    }
    let n = session.eval(&format!(r#"predict(model, load_dataset("{}")).len()"#, folder.display()), "folder.rhai").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n.as_int().unwrap(), 2, "a folder of text files without class subfolders is data to predict on");
}
