//! Early stopping through the script API.

mod common;

use tunebook::train::TrainEvent;

const SETUP: &str = r#"
    let model = load_model("minilm", #{ labels: ["rotten", "fresh"], pooling: "mean" });
    let data = load_dataset("rotten_tomatoes").clean().split(#{ val: 0.2, seed: 5 });
    let train = data.train.take(96).tokenize(model, #{ max_len: 24 }).loader(#{ batch: 16, shuffle: true });
    let val = data.val.take(96).tokenize(model, #{ max_len: 24 }).loader(#{ batch: 96 });
    model.freeze("embeddings");
"#;

fn eval(code: &str) -> (rhai::Map, Vec<TrainEvent>) {
    let (mut session, recorded) = common::session();
    let value = session.eval(&format!("{SETUP}{code}"), "early.rhai").unwrap_or_else(|e| panic!("{e}"));
    let events = recorded.borrow().events.clone();
    (value.cast::<rhai::Map>(), events)
}

#[test]
fn a_run_that_stops_improving_stops_after_patience_epochs() {
    let _serial = common::serial();
    // A negligible learning rate never improves on the first epoch by min_delta.
    let (r, events) = eval(
        r#"let run = fit(model, train, val, #{ lr: 1e-12, epochs: 10, early_stopping: #{ metric: "val_loss", patience: 2, min_delta: 0.01 } });
           #{ stopped: run.stopped_early_at, best: run.best_epoch, epochs: run.history.len() }"#,
    );
    assert_eq!(r["stopped"].as_int().unwrap(), 3);
    assert_eq!(r["best"].as_int().unwrap(), 1);
    assert_eq!(r["epochs"].as_int().unwrap(), 3);
    assert!(events.iter().any(|e| matches!(e, TrainEvent::EarlyStopping { stopped_at: Some(3), best_epoch: 1, .. })));
}

#[test]
fn the_best_epochs_weights_are_restored() {
    let _serial = common::serial();
    let (r, _) = eval(
        r#"let tiny = data.train.take(32).tokenize(model, #{ max_len: 24 }).loader(#{ batch: 8, shuffle: true });
           let run = fit(model, tiny, val, #{ lr: 1e-3, epochs: 6, early_stopping: #{ metric: "val_loss", patience: 10 } });
           let best = run.history[run.best_epoch - 1];
           let now = evaluate(model, val);
           #{ best_loss: best.val_loss, now_loss: now.loss, best: run.best_epoch }"#,
    );
    // 32 rows at a high rate overfit within two epochs (measured: val_loss 0.71 at
    // epoch 1, 1.89 at epoch 6), so restoring really moves the weights back.
    assert!(r["best"].as_int().unwrap() < 6, "the best epoch was the last; the test would prove nothing");
    let (best, now) = (r["best_loss"].as_float().unwrap(), r["now_loss"].as_float().unwrap());
    assert!((best - now).abs() < 1e-6, "after training the model scores {now}, but its best epoch ({}) scored {best}", r["best"]);
}

#[test]
fn early_stopping_options_are_checked() {
    let _serial = common::serial();
    let (mut session, _) = common::session();
    for (code, expected) in [
        (r#"fit(model, train, val, #{ early_stopping: #{ patiense: 2 } })"#, "early_stopping: unknown option 'patiense'. Did you mean 'patience'?"),
        (r#"fit(model, train, val, #{ early_stopping: #{ metric: "accuracy" } })"#, "option 'metric' must be one of val_loss, val_accuracy"),
        (r#"fit(model, train, val, #{ early_stopping: 3 })"#, "option 'early_stopping' must be a map"),
        (r#"fit(model, train, #{ early_stopping: #{ patience: 2 } })"#, "early stopping watches the validation set"),
    ] {
        let err = session.eval(&format!("{SETUP}{code}"), "early.rhai").unwrap_err();
        assert!(err.message.contains(expected), "{code}: {}", err.message);
    }
}
