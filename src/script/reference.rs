//! The script API's reference: one entry per function, used by the kernel's
//! completion and inspection (and by `tunebook api`).

/// One function of the script API.
#[derive(Debug, Clone, Copy)]
pub struct ApiEntry {
    /// The function's name.
    pub name: &'static str,
    /// The type it is a method of (`Model`, `Dataset`, ...), if any.
    pub receiver: Option<&'static str>,
    /// How it is called.
    pub signature: &'static str,
    /// What it does.
    pub doc: &'static str,
}

const fn f(name: &'static str, signature: &'static str, doc: &'static str) -> ApiEntry {
    ApiEntry { name, receiver: None, signature, doc }
}

const fn m(receiver: &'static str, name: &'static str, signature: &'static str, doc: &'static str) -> ApiEntry {
    ApiEntry { name, receiver: Some(receiver), signature, doc }
}

/// Every documented function and method.
pub const API: &[ApiEntry] = &[
    f("load_model", "load_model(name_or_path, #{ task: \"classify\", labels, pooling: \"pooler\"|\"mean\", device })", "Loads a pretrained BERT-family model in Hugging Face layout (\"minilm\" names the cached all-MiniLM-L6-v2). `labels` is a count or a list of class names; a new classification head is created for them."),
    m("Model", "summary", "model.summary()", "Trainable and frozen parameters per module, the totals and the trainable share."),
    m("Model", "freeze", "model.freeze(selector)", "Freezes what a selector names: a module path (\"encoder.layer.3\"), a layer range (\"encoder.layer.0-3\"), a glob (\"encoder.layer.*.attention\", \"*.bias\") or a kind: all, embeddings, encoder, head, norm, bias, lora, adapter. Commas or an array join selectors. A name that matches nothing lists the closest module names. Returns the number of tensors named."),
    m("Model", "unfreeze", "model.unfreeze(selector)", "Makes what a selector names train again (see freeze)."),
    m("Model", "freeze_all", "model.freeze_all()", "Freezes every parameter."),
    m("Model", "unfreeze_all", "model.unfreeze_all()", "Makes every parameter the model uses train."),
    m("Model", "train_only", "model.train_only(selector or [selectors])", "Freezes everything, then unfreezes what the selectors name: train_only(\"head\") trains the classifier alone."),
    m("Model", "trainable_layers", "model.trainable_layers(n)", "Trains the head and the last n transformer layers (the first -n when n is negative); freezes the rest."),
    m("Model", "select", "model.select(selector)", "The names of the parameters a selector names, to check a pattern before freezing."),
    m("Model", "layer_groups", "model.layer_groups()", "The layer groups from the top down (head, the last layer, ..., embeddings), as gradual unfreezing and layer_decay walk them."),
    m("Model", "add_lora", "model.add_lora(#{ r: 8, alpha: 16, dropout: 0.1, targets: [\"query\", \"value\"] })", "Adds LoRA updates (W + alpha/r B A) to the linear layers the targets name (a last name, a module path or a glob; PEFT's defaults when omitted) and freezes everything except them and the head. Returns a line with the trainable share."),
    m("Model", "merge_lora", "model.merge_lora()", "Folds the LoRA updates into the weights and removes them; the outputs stay the same. save() merges on its own, so this is for speed at inference."),
    m("Model", "add_adapters", "model.add_adapters(#{ size: 64 })", "Adds Houlsby bottleneck adapters after the attention and the feed-forward of every layer and freezes everything except them, the LayerNorms and the head."),
    m("Model", "add_head", "model.add_head(name, #{ labels, pooling: \"mean\" })", "Adds another classification head on the same backbone (multi-task). It is parked until use_head(name); a parked head is frozen and left out of counts."),
    m("Model", "use_head", "model.use_head(name)", "Makes a head the active one: fit, evaluate, predict and labels use it. The head it replaces keeps its weights and its freezing."),
    m("Model", "head", "model.head", "The active head's name (\"main\" for the head the model was loaded with)."),
    m("Model", "heads", "model.heads", "Every head's name, the active one first."),
    m("Model", "save_adapter", "model.save_adapter(dir)", "Saves the LoRA or adapter tensors together with the head (and anything else that differs from the base model) as adapter_config.json and adapter_model.safetensors, PEFT's layout. Returns the folder."),
    m("Model", "load_adapter", "model.load_adapter(dir)", "Adds the adapter a save_adapter folder describes to this (base) model and loads its tensors, head included."),
    m("Model", "save", "model.save(dir)", "Saves config.json, model.safetensors and the tokenizer files (Hugging Face layout), written beside the target and renamed into place. Returns the folder."),
    m("Model", "embed", "model.embed(texts)", "Sentence embeddings: the mean of the last hidden states over real tokens, L2-normalized (what all-MiniLM-L6-v2 was trained for). One array of floats per text."),
    m("Model", "predict", "model.predict(texts)", "The same as predict(model, texts)."),
    m("Model", "config", "model.config", "The checkpoint's config.json as a map."),
    m("Model", "parameters", "model.parameters()", "Every parameter: name, shape and whether it trains."),
    m("Model", "labels", "model.labels", "The class names of the head, by label id."),
    m("Model", "device", "model.device", "Where the model's weights are: cpu or cuda."),
    m("Model", "trainable_params", "model.trainable_params", "How many parameters train."),
    m("Model", "total_params", "model.total_params", "How many parameters the model has."),
    f("load_dataset", "load_dataset(name_or_csv, #{ text: \"text\", label: \"label\" })", "Loads a named dataset from the cache (\"rotten_tomatoes\": review snippets, rotten/fresh; \"bbc_news\": articles in 5 topics) or a CSV file with a header; `text` and `label` name its columns."),
    m("Dataset", "clean", "data.clean()", "Normalizes whitespace and drops empty rows and exact duplicates; prints how many rows each step removed."),
    m("Dataset", "split", "data.split(#{ val: 0.2, seed })", "Shuffles with the seed and splits off a validation share. Returns #{ train, val }."),
    m("Dataset", "take", "data.take(n)", "The first n rows."),
    m("Dataset", "shuffle", "data.shuffle(seed)", "The rows in a seeded random order."),
    m("Dataset", "labels", "data.labels()", "Rows per class, as a map."),
    m("Dataset", "head", "data.head(n)", "The first n rows as maps of text and label."),
    m("Dataset", "len", "data.len()", "The number of rows."),
    m("Dataset", "tokenize", "data.tokenize(model, #{ max_len: 128 })", "Tokenizes every text with the model's tokenizer, truncating to max_len tokens."),
    m("TokenizedDataset", "loader", "tokens.loader(#{ batch: 16, shuffle: false, seed, drop_last: false })", "Batches of rows, each padded to its longest row."),
    f("fit", "fit(model, train, val, #{ optimizer: \"adamw\", lr: 2e-5, weight_decay: 0.01, schedule: \"linear\", warmup: 0.1, epochs: 3, max_steps, max_grad_norm: 1.0, early_stopping: #{ metric: \"val_loss\"|\"val_accuracy\", patience: 3, min_delta: 0.0, restore_best: true }, gradual_unfreezing: k, freeze_epochs: n, layer_decay: 0.8, lr_groups: [#{ modules: \"embeddings\", lr: 1e-5 }] })", "Trains the model on the train loader, evaluating on val after each epoch; early stopping ends the run when the metric has not improved for `patience` epochs and puts back the best epoch's weights. gradual_unfreezing trains the head alone first and opens one more layer group from the top every k epochs; freeze_epochs trains the head alone for n epochs, then everything (both keep what you froze frozen, and put your freezing back at the end). layer_decay multiplies the rate by this factor per group going down; lr_groups sets rates for what selectors name. Returns the run. Interrupting stops at the next batch and keeps the weights learned so far."),
    f("plot", "plot(run)", "Charts the run: training loss by step (raw and smoothed) with validation loss, and validation accuracy by epoch. Inline in a notebook; a PNG under out/plots/ from `tunebook run`."),
    f("evaluate", "evaluate(model, loader)", "Loss and accuracy of the model on every batch, without gradients: #{ loss, accuracy, rows }."),
    f("predict", "predict(model, texts, #{ max_len: 128, head })", "The predicted label and its probability for each text (or for one string), from the active head or the one `head` names."),
    m("Run", "val_accuracy", "run.val_accuracy", "Validation accuracy after the last epoch."),
    m("Run", "val_loss", "run.val_loss", "Validation loss after the last epoch."),
    m("Run", "best_val_accuracy", "run.best_val_accuracy", "The best validation accuracy of any epoch."),
    m("Run", "history", "run.history", "One map per epoch: epoch, train_loss, val_loss, val_accuracy."),
    m("Run", "best_epoch", "run.best_epoch", "The best epoch under early stopping (unit without it)."),
    m("Run", "stopped_early_at", "run.stopped_early_at", "The epoch after which early stopping ended the run (unit if it did not)."),
    m("Run", "seconds", "run.seconds", "How long the run took."),
    m("Run", "samples_per_sec", "run.samples_per_sec", "Training throughput, evaluation excluded."),
    m("Run", "train_seconds", "run.train_seconds", "Seconds spent training, evaluation excluded."),
    m("Run", "seconds_per_epoch", "run.seconds_per_epoch", "Training seconds per epoch, evaluation excluded."),
    m("Run", "trainable_params", "run.trainable_params", "Parameters that trained when the run started."),
    m("Run", "total_params", "run.total_params", "All parameters of the model."),
    m("Run", "optimizer_state_mb", "run.optimizer_state_mb", "Megabytes of optimizer state (Adam's moments of the parameters that trained)."),
    m("Run", "peak_memory_mb", "run.peak_memory_mb", "Peak resident memory of the process during the run, in megabytes (unit where the system does not say)."),
    m("Run", "interrupted", "run.interrupted", "Whether an interrupt stopped the run."),
    m("Run", "steps", "run.steps", "Optimizer steps taken."),
    f("set_seed", "set_seed(n)", "Seeds weight initialization, dropout and the default shuffles and splits."),
    f("device", "device()", "The device new models are placed on."),
    f("input", "input(prompt)", "Asks the user for a line of text (in a notebook, through the frontend)."),
    f("print", "print(value)", "Prints a value."),
    f("debug", "debug(value)", "Prints a value on the error stream (stderr)."),
    f("display", "display(value)", "Shows a value richly: a table for models, datasets and runs in a notebook."),
    f("table", "table(rows, [columns])", "A table from an array of maps, one row each; the columns are the given names in that order, else every key alphabetically. Aligned text when printed, an HTML table in a notebook."),
    f("clear_output", "clear_output()", "Clears the output of the current notebook cell."),
    f("help", "help(name)", "Shows the reference for a function or method."),
];

/// The keys each function's option map accepts.
pub const OPTIONS: &[(&str, &[&str])] = &[
    ("load_model", &["task", "labels", "pooling", "device"]),
    ("load_dataset", &["text", "label"]),
    ("split", &["val", "seed"]),
    ("tokenize", &["max_len"]),
    ("loader", &["batch", "shuffle", "seed", "drop_last"]),
    (
        "fit",
        &[
            "optimizer", "lr", "weight_decay", "schedule", "warmup", "epochs", "max_steps", "max_grad_norm", "early_stopping", "gradual_unfreezing",
            "freeze_epochs", "layer_decay", "lr_groups",
        ],
    ),
    ("lr_groups", &["modules", "lr"]),
    ("add_lora", &["r", "alpha", "dropout", "targets"]),
    ("add_adapters", &["size"]),
    ("early_stopping", &["metric", "patience", "min_delta", "restore_best"]),
    ("predict", &["max_len", "head"]),
    ("add_head", &["labels", "pooling"]),
];

/// The option keys of `function` (empty if it takes none).
pub fn options_of(function: &str) -> &'static [&'static str] {
    OPTIONS.iter().find(|(f, _)| *f == function).map(|(_, keys)| *keys).unwrap_or(&[])
}

/// The entries with this name (a function and methods may share one).
pub fn lookup(name: &str) -> Vec<&'static ApiEntry> {
    API.iter().filter(|e| e.name == name).collect()
}

/// The help text for a name: signature and doc of each entry.
pub fn help(name: &str) -> Option<String> {
    let entries = lookup(name);
    if entries.is_empty() {
        return None;
    }
    Some(entries.iter().map(|e| format!("{}\n\n{}", e.signature, e.doc)).collect::<Vec<_>>().join("\n\n"))
}
