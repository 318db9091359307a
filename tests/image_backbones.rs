//! The ImageNet backbones as a user meets them: a photograph that a
//! registry ships gets a sensible ImageNet top-5, a frozen backbone's
//! BatchNorm statistics stay bit for bit while its head trains, freezing
//! by block and counting blocks from the top, and the loader turning grey
//! 28-pixel images into what a colour backbone reads. (Parity with
//! torchvision and the EfficientNet-Lite reference is in
//! tests/python/test_image_backbones.py.)

mod common;

fn eval_map(code: &str) -> rhai::Map {
    let _one_at_a_time = common::serial();
    let (mut session, _) = common::session();
    session.eval(code, "backbones.rhai").unwrap_or_else(|e| panic!("{e}")).cast::<rhai::Map>()
}

fn photo(name: &str) -> String {
    tunebook::runtime::cache_dir().join("datasets/photos").join(name).display().to_string()
}

fn top_labels(m: &rhai::Map, key: &str) -> Vec<String> {
    m[key].clone().cast::<rhai::Map>()["top"].clone().into_array().unwrap().into_iter().map(|t| t.cast::<rhai::Map>()["label"].to_string()).collect()
}

#[test]
fn the_cat_is_a_cat_and_the_coffee_is_espresso() {
    let r = eval_map(&format!(
        r#"
        let mobilenet = load_model("mobilenet_v2");
        let lite = load_model("efficientnet_lite0");
        #{{ m_cat: predict(mobilenet, "{cat}"), l_cat: predict(lite, "{cat}"), m_coffee: predict(mobilenet, "{coffee}"), l_coffee: predict(lite, "{coffee}") }}
        "#,
        cat = photo("chelsea.png"),
        coffee = photo("coffee.png")
    ));
    let cats = ["tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"];
    for key in ["m_cat", "l_cat"] {
        let top = top_labels(&r, key);
        eprintln!("{key}: {top:?}");
        assert_eq!(top.len(), 5);
        assert!(cats.contains(&top[0].as_str()), "{key}: the best guess for a cat is {}", top[0]);
        assert!(top.iter().take(3).all(|l| cats.contains(&l.as_str())), "{key}: the top 3 are all cats: {top:?}");
    }
    for key in ["m_coffee", "l_coffee"] {
        let top = top_labels(&r, key);
        eprintln!("{key}: {top:?}");
        assert!(top.iter().take(2).any(|l| l == "espresso"), "{key}: {top:?}");
    }
}

#[test]
fn a_frozen_backbone_keeps_its_batchnorm_statistics_while_the_head_trains() {
    let out = tempfile::tempdir().unwrap();
    let r = eval_map(&format!(
        r#"
        let data = load_dataset("fashion_mnist").take(64);
        let m = load_model("mobilenet_v2", #{{ labels: data, size: 64 }});
        m.freeze("backbone");
        m.save("{out}/before");
        let run = fit(m, data.loader(#{{ batch: 16, model: m, shuffle: true }}), #{{ epochs: 1, lr: 1e-3 }});
        m.save("{out}/frozen");
        m.unfreeze("all");
        fit(m, data.loader(#{{ batch: 16, model: m }}), #{{ epochs: 1, lr: 1e-4 }});
        m.save("{out}/trained");
        #{{ summary: m.summary().to_string(), steps: run.steps, groups: m.layer_groups(), trainable: m.trainable_layers(3) }}
        "#,
        out = out.path().display()
    ));
    let read = |name: &str| -> std::collections::HashMap<String, tch::Tensor> { tch::Tensor::read_safetensors(out.path().join(name).join("model.safetensors")).unwrap().into_iter().collect() };
    let (before, frozen, trained) = (read("before"), read("frozen"), read("trained"));
    assert_eq!(r["steps"].as_int().unwrap(), 4);
    let mut stats = 0;
    for (name, t) in &before {
        if name.contains("running_") {
            stats += 1;
            assert!(t.equal(&frozen[name]), "{name}: a frozen BatchNorm's statistics changed");
        }
    }
    assert_eq!(stats, 2 * 52, "running mean and variance of 52 BatchNorm layers");
    assert!(!before["classifier.1.weight"].equal(&frozen["classifier.1.weight"]), "the head trained");
    assert!(!frozen["features.5.conv.1.1.running_mean"].equal(&trained["features.5.conv.1.1.running_mean"]), "unfrozen, the statistics follow the data");
    // Freezing by block: the summary counts blocks, and trainable_layers counts them from the top.
    let summary = r["summary"].to_string();
    assert!(summary.contains("BatchNorm: 52 layers, 0 with frozen statistics"), "{summary}");
    let groups = r["groups"].to_string();
    assert!(groups.starts_with(r#"["head", "features.18", "features.17""#) && groups.ends_with(r#""features.0"]"#), "{groups}");
    assert!(r["trainable"].as_int().unwrap() > 0);
}

#[test]
fn grey_images_become_what_a_colour_backbone_reads_and_bad_selectors_list_the_blocks() {
    let r = eval_map(
        r#"
        let data = load_dataset("fashion_mnist").take(8);
        let m = load_model("efficientnet_lite0", #{ labels: data, size: 64 });
        let plain = data.loader(#{ batch: 8, model: m });
        let augmented = data.loader(#{ batch: 8, model: m, augment: #{ resized_crop: true, flip: true, color_jitter: 0.4 } });
        let err = "";
        try { m.freeze("_blocks.40"); } catch (e) { err = `${e}`; }
        let chart = plot_images(augmented, #{ n: 4 });
        m.freeze("stem, _blocks.0-9");
        #{ err: err, chart: chart.kind, frozen: m.summary().to_string(), predicted: predict(m, data).len(), loss: evaluate(m, plain).loss }
        "#,
    );
    let err = r["err"].to_string();
    assert!(err.contains("closest names") && err.contains("_blocks"), "{err}");
    assert_eq!(r["chart"].to_string(), "image grid");
    let frozen = r["frozen"].to_string();
    assert!(frozen.contains("BatchNorm: 49 layers, 30 with frozen statistics"), "the stem's 1 and blocks 0-9's 29 (block 0 has no expansion): {frozen}");
    assert_eq!(r["predicted"].as_int().unwrap(), 8);
    assert!(r["loss"].as_float().unwrap().is_finite());
}
