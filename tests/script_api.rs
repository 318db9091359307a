//! The script API as a user meets it: every documented function runs from a
//! script, docs/api.md is generated from the same reference, and every kind
//! of bad option gets a message that says what to write instead.

mod common;

use tunebook::script::reference::{self, API, PRELUDE};

#[test]
fn every_documented_function_runs_its_example_from_a_script() {
    let (mut session, recorded) = common::session();
    let _ = session.eval(PRELUDE, "prelude.rhai").unwrap_or_else(|e| panic!("prelude: {e}"));
    for entry in API {
        assert!(entry.example.contains(entry.name), "the example of {} does not use it: {}", entry.name, entry.example);
        // Each example in its own block, so that its variables do not leak into the next.
        let code = format!("{{\n{}\n}}", entry.example);
        let name = format!("example of {}", entry.name);
        let _ = session.eval(&code, &name).unwrap_or_else(|e| panic!("{name} failed: {e}\n{}", entry.example));
    }
    let printed = recorded.borrow().printed.join("\n");
    assert!(printed.contains("LoRA r=8 alpha=16 on 12 layers"), "{printed}");
    assert!(!recorded.borrow().charts.is_empty(), "plot(run) showed a chart");
}

#[test]
fn docs_api_md_is_generated_from_the_reference_and_current() {
    let path = common::repo().join("docs/api.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == reference::markdown(),
        "docs/api.md is stale: regenerate it with `target/release/tunebook api --markdown > docs/api.md`"
    );
    for entry in API {
        assert!(committed.contains(&format!("### `{}`", entry.name)));
    }
}

#[test]
fn every_kind_of_bad_option_says_what_was_wrong_and_what_is_valid() {
    let cases: &[(&str, &str)] = &[
        // Unknown key, with and without a close match.
        ("load_dataset(\"rotten_tomatoes\").split(#{ vall: 0.2 })", "split: unknown option 'vall'. Did you mean 'val'? Valid options: val, test, seed, stratify"),
        ("load_dataset(\"rotten_tomatoes\").split(#{ colour: 1 })", "split: unknown option 'colour'. Valid options: val, test, seed, stratify"),
        // Wrong type.
        ("load_dataset(\"rotten_tomatoes\").split(#{ val: \"half\" })", "split: option 'val' must be a number, got string (half)"),
        ("load_dataset(\"rotten_tomatoes\").take(4).tokenize(model, #{ max_len: 1.5 })", "tokenize: option 'max_len' must be an integer, got f64"),
        ("fit(model, train, #{ early_stopping: 3 })", "fit: option 'early_stopping' must be a map like"),
        ("fit(model, train, #{ early_stopping: #{ restore_best: \"yes\" } })", "early_stopping: option 'restore_best' must be true or false, got string (yes)"),
        ("load_model(\"minilm\", #{ labels: 2, pooling: 1 })", "load_model: option 'pooling' must be a string, got i64 (1)"),
        // Out of range.
        ("load_dataset(\"rotten_tomatoes\").split(#{ val: 1.5 })", "split: option 'val' must be a share between 0 and 1 or a number of rows, got 1.5"),
        ("fit(model, train, #{ epochs: 0 })", "fit: option 'epochs' must be between 1 and"),
        // Not one of the choices.
        ("fit(model, train, #{ schedule: \"cosine-ish\" })", "fit: option 'schedule' must be one of constant, linear, cosine, one_cycle, reduce_on_plateau, got 'cosine-ish'"),
        ("load_model(\"minilm\", #{ labels: 2, pooling: \"max\" })", "load_model: option 'pooling' must be one of pooler, mean, got 'max'"),
        // Nested maps are checked as well.
        ("fit(model, train, #{ lr_groups: [#{ modulse: \"embeddings\", lr: 1e-5 }] })", "lr_groups: unknown option 'modulse'. Did you mean 'modules'?"),
        ("fit(model, train, #{ lr_groups: [#{ modules: \"embeddings\" }] })", "the lr_groups entry for 'embeddings' needs 'lr'"),
        ("fit(model, train, #{ gradual_unfreezing: 1, freeze_epochs: 1 })", "give either gradual_unfreezing or freeze_epochs, not both"),
        ("fit(model, train, #{ optimizer: \"adamw\", momentum: 0.9 })", "fit: momentum and nesterov belong to sgd; adamw has its own (betas)"),
        ("fit(model, train, #{ optimizer: \"sgd\", nesterov: true })", "fit: Nesterov momentum needs a momentum above 0"),
        ("fit(model, train, #{ early_stopping: #{ patience: 2, mode: \"max\" } })", "early_stopping: unknown option 'mode'"),
        // Values that are well-typed but meaningless.
        ("fit(model, train, #{ lr: 0.0 })", "the learning rate must be positive, got 0"),
        ("load_model(\"minilm\", #{ labels: 1 })", "load_model: option 'labels' must be at least 2, got 1"),
        ("load_model(\"minilm\", #{ labels: [1, 2] })", "load_model: 'labels' must hold strings"),
        ("model.add_lora(#{ r: 0 })", "add_lora: option 'r' must be between 1 and 4096, got 0"),
        ("model.add_head(\"topic\", #{ pooling: \"mean\" })", "add_head: give the head's labels"),
        ("table([1, 2])", "table: row 1 is not a map"),
    ];
    let (mut session, _) = common::session();
    let _ = session
        .eval(
            "let model = load_model(\"minilm\", #{ labels: 2, pooling: \"mean\" });\nlet train = load_dataset(\"rotten_tomatoes\").take(16).tokenize(model, #{ max_len: 16 }).loader(#{ batch: 16 });",
            "setup.rhai",
        )
        .unwrap();
    for (code, expected) in cases {
        let err = session.eval(code, "options.rhai").err().unwrap_or_else(|| panic!("{code} should fail")).to_string();
        assert!(err.starts_with("options.rhai:1:"), "{code}: no position in {err}");
        assert!(err.contains(expected), "{code}:\n  got      {err}\n  expected {expected}");
        assert!(!err.contains("panicked") && !err.contains("rhai::"), "{code}: Rust leaked into {err}");
    }
}

#[test]
fn runaway_scripts_hit_a_limit_with_a_clear_error() {
    let (mut session, _) = common::session();
    let err = session.eval("fn down(n) { down(n + 1) }\ndown(0);", "deep.rhai").unwrap_err().to_string();
    assert!(err.contains("deep.rhai:") && err.to_lowercase().contains("stack overflow"), "{err}");
    let err = session.eval("let s = \"x\"; loop { s += s; }", "big.rhai").unwrap_err().to_string();
    assert!(err.contains("big.rhai:1:") && err.to_lowercase().contains("length of string"), "{err}");
}

#[test]
fn a_function_defined_in_one_cell_is_callable_in_the_next_and_can_be_redefined() {
    let (mut session, _) = common::session();
    let _ = session.eval("fn scale(x) { x * 2 }", "cell 1").unwrap();
    assert_eq!(session.eval("scale(21)", "cell 2").unwrap().as_int().unwrap(), 42);
    let _ = session.eval("fn scale(x) { x * 3 }", "cell 3").unwrap();
    assert_eq!(session.eval("scale(14)", "cell 4").unwrap().as_int().unwrap(), 42);
}

#[test]
fn tensor_mistakes_get_messages_in_the_users_terms() {
    let (mut session, _) = common::session();
    let cases: &[(&str, &str)] = &[
        ("tensor([[1, 2], [3]])", "tensor: rows of different lengths (2 and 1)"),
        ("tensor([1, \"a\"])", "tensor: expected numbers, found a string"),
        ("tensor([1, 2]).item()", "item: the tensor has 2 elements (shape [2])"),
        ("tensor([[1.0, 2.0]]).matmul(tensor([[1.0, 2.0]]))", "matmul: "),
        ("tensor([1, 2, 3]).reshape([2, 2])", "reshape: "),
        ("tensor([1.0, 2.0]) + tensor([1.0, 2.0, 3.0])", "+: "),
        ("let m = load_model(\"minilm\", #{ labels: 2 }); m.weight(\"classifier.weigth\")", "weight: the model has no parameter 'classifier.weigth'; closest: classifier.weight"),
    ];
    for (code, expected) in cases {
        let err = session.eval(code, "t.rhai").err().unwrap_or_else(|| panic!("{code} should fail")).to_string();
        assert!(err.contains(expected) && err.starts_with("t.rhai:1:"), "{code}: {err}");
        assert!(!err.contains("panicked") && !err.contains("Exception raised from"), "{code}: C++ or Rust leaked: {err}");
    }
    // Values as PyTorch computes them.
    let v = session.eval("let a = tensor([[1.0, 2.0], [3.0, 4.0]]); [a.matmul(a).to_array(), (a / 2).sum().item(), a.dtype, tensor([1, 2]).dtype]", "ok.rhai").unwrap();
    assert_eq!(v.to_string(), "[[[7.0, 10.0], [15.0, 22.0]], 5.0, \"float32\", \"int64\"]");
}
