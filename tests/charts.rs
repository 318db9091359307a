//! The chart API from a script: every plot function on a real small run,
//! what it shows, what `save` writes, and the errors for bad input.

mod common;

fn png_size(bytes: &[u8]) -> (u32, u32) {
    let reader = png::Decoder::new(std::io::Cursor::new(bytes.to_vec())).read_info().expect("a PNG that decodes");
    (reader.info().width, reader.info().height)
}

#[test]
fn every_plot_function_shows_a_chart_that_saves_as_svg_and_png() {
    let _serial = common::serial();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().display().to_string();
    let (mut session, recorded) = common::session();
    let script = format!(
        r#"
        let model = load_model("minilm", #{{ labels: ["rotten", "fresh"], pooling: "mean" }});
        let data = load_dataset("rotten_tomatoes").clean().split(#{{ val: 0.2, seed: 7 }});
        let tokens = data.train.take(48).tokenize(model, #{{ max_len: 24 }});
        let train = tokens.loader(#{{ batch: 16, shuffle: true }});
        let val = data.val.take(32).tokenize(model, #{{ max_len: 24 }}).loader(#{{ batch: 32 }});
        let run = fit(model, train, val, #{{ epochs: 2, lr: 5e-5, track_layers: true }});
        let result = evaluate(model, val);
        let images = load_dataset("fashion_mnist").take(8);
        let charts = [
            plot(run), plot([run, run], #{{ names: ["a", "b"] }}), plot_costs(#{{ first: run, second: run }}),
            plot_lr(run), plot_layers(run), plot_freeze(model), plot_confusion(result), plot_scores(result),
            plot_balance(data.train), plot_lengths(tokens), plot_balance(images),
            plot_images(images.loader(#{{ augment: #{{ crop: 2, flip: true }} }}), #{{ n: 4, title: "shirts and shoes" }}),
            plot(lr_find(model, train, #{{ steps: 10 }})),
        ];
        let kinds = [];
        for c in charts {{ kinds.push(c.kind); }}
        let resized = plot_lr(run, #{{ width: 640, height: 280 }});
        charts[0].save("{dir}/curves.png");
        charts[0].save("{dir}/curves.svg", #{{ title: "Curves", width: 1000, height: 400 }});
        charts[4].title("Which layers learn").save("{dir}/layers.svg");
        [kinds, resized.width, resized.height, run.steps]
        "#
    );
    let value = session.eval(&script, "charts.rhai").unwrap_or_else(|e| panic!("{e}"));
    let parts = value.into_array().unwrap();
    let kinds: Vec<String> = parts[0].clone().into_array().unwrap().into_iter().map(|k| k.to_string()).collect();
    assert_eq!(
        kinds,
        [
            "training curves", "run comparison", "run comparison bars", "learning-rate schedule", "layer norms", "trainable and frozen parameters", "confusion matrix",
            "per-class scores", "class balance", "token lengths", "class balance", "image grid", "learning-rate range test"
        ]
    );
    assert_eq!((parts[1].as_int().unwrap(), parts[2].as_int().unwrap()), (640, 280));
    let shown = recorded.borrow().charts.clone();
    assert_eq!(shown.len(), 14, "each plot function showed its chart once");
    for chart in &shown {
        let svg = chart.svg().unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{}: not an SVG", chart.kind());
        assert_eq!(png_size(&chart.png().unwrap()), chart.size(), "{}", chart.kind());
    }
    // The run recorded each layer group's change for both epochs.
    let layers = shown[4].svg().unwrap();
    for group in ["head", "encoder.layer.5", "encoder.layer.0", "embeddings"] {
        assert!(layers.contains(group), "the layer chart lacks {group}");
    }
    assert!(shown[11].svg().unwrap().matches("<image").count() == 8, "4 originals and 4 augmented images");
    assert_eq!(png_size(&std::fs::read(out.path().join("curves.png")).unwrap()), (600, 300));
    let svg = std::fs::read_to_string(out.path().join("curves.svg")).unwrap();
    assert!(svg.contains("width=\"1000\"") && svg.contains("Curves"));
    assert!(std::fs::read_to_string(out.path().join("layers.svg")).unwrap().contains("Which layers learn"));
}

#[test]
fn bad_chart_input_says_what_was_wrong() {
    let _serial = common::serial();
    let (mut session, _) = common::session();
    let cases = [
        ("plot([1, 2])", "plot: item 1 is not a run"),
        ("plot_confusion(#{ accuracy: 0.5 })", "give it what evaluate(model, loader) returned for a classifier"),
        ("plot_balance(load_dataset(\"mnist\").take(4), #{ colour: \"red\" })", "plot_balance: unknown option 'colour'"),
        ("plot_balance(load_dataset(\"mnist\").take(4), #{ width: 50 })", "option 'width' must be between 120 and 4000"),
        ("plot_balance(load_dataset(\"mnist\").take(4)).save(\"chart.jpg\")", "name the file .svg or .png"),
        ("plot_balance(load_dataset(\"mnist\").take(4)).resize(10, 10)", "between 120 and 4000 pixels"),
    ];
    for (code, expected) in cases {
        let err = session.eval(code, "cell").expect_err(code);
        assert!(err.message.contains(expected), "{code}: {}", err.message);
        assert_eq!(err.line, Some(1), "{code}: the error points at the call");
    }
    assert!(!std::path::Path::new("chart.jpg").exists());
}
