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
    /// A short use of it, run by the tests in a session that has `PRELUDE`'s variables.
    pub example: &'static str,
}

const fn f(name: &'static str, signature: &'static str, doc: &'static str, example: &'static str) -> ApiEntry {
    ApiEntry { name, receiver: None, signature, doc, example }
}

const fn m(receiver: &'static str, name: &'static str, signature: &'static str, doc: &'static str, example: &'static str) -> ApiEntry {
    ApiEntry { name, receiver: Some(receiver), signature, doc, example }
}

/// What the examples assume: a model, a split dataset, two loaders and a run.
pub const PRELUDE: &str = r#"let model = load_model("minilm", #{ labels: ["rotten", "fresh"], pooling: "mean" });
let data = load_dataset("rotten_tomatoes").clean().split(#{ val: 0.2, seed: 42 });
let train = data.train.take(64).tokenize(model, #{ max_len: 32 }).loader(#{ batch: 16, shuffle: true });
let val = data.val.take(64).tokenize(model, #{ max_len: 32 }).loader(#{ batch: 64 });
let run = fit(model, train, val, #{ epochs: 1 });"#;

/// Every documented function and method.
pub const API: &[ApiEntry] = &[
    f("load_model", "load_model(name_or_path, #{ task: \"classify\"|\"multi_label\"|\"regression\"|\"token_classify\", labels, pooling: \"pooler\"|\"mean\", device, dropout, size, weights: \"fp32\"|\"bf16\" })", "Loads a pretrained model. Image backbones (\"mobilenet_v2\", torchvision's ImageNet MobileNetV2, and \"efficientnet_lite0\", or a .pth/.pt state dict of either) come with ImageNet's 1,000 classes; labels (a count, names or an image dataset) and task give them a new head, size (224 by default) the input side in pixels, dropout the classifier's. Encoders (BERT, RoBERTa, DistilBERT) come from a Hugging Face folder (\"minilm\" names the cached all-MiniLM-L6-v2). Language models (Llama, SmolLM, Qwen2, Mistral, Gemma, GPT-2) come from a Hugging Face folder or a GGUF file (F32, F16, BF16, Q8_0, Q4_0 or Q4_1 tensors, dequantized to fp32); \"smollm2\" names the cached SmolLM2-135M-Instruct, and such a model takes only the `device` and `weights` options. weights: \"bf16\" (text encoders and language models) stores the blocks' weight matrices and the embedding tables in bf16, halving the memory of a model that is only used or whose frozen part stays frozen (partial fine-tuning, LoRA, adapters), as from_pretrained(..., torch_dtype=torch.bfloat16) does for the frozen base; the activations stay fp32 (or follow precision), and fit gives fp32 back to every weight it trains (master weights), so fully fine-tuning such a model saves nothing; model.summary() shows what is stored in bf16. `labels` is a count or a list of names; a new head is created for them. `task` says what the head predicts: one class per text (classify, softmax and cross-entropy), any number of labels (multi_label, a sigmoid per label and binary cross-entropy), numbers (regression, one output per label, MSE), or one class per word (token_classify: a classifier on every token, trained on each word's first token, as Hugging Face's ...ForTokenClassification); a regression head without `labels` has one output. A saved model keeps its task (Hugging Face's problem_type). `dropout` (0 to 0.9) replaces the checkpoint's hidden, attention and classifier dropout, as from_pretrained(..., hidden_dropout_prob=p) does; it acts only in training.", "let model = load_model(\"minilm\", #{ labels: [\"rotten\", \"fresh\"], pooling: \"mean\" });\nlet scorer = load_model(\"minilm\", #{ task: \"regression\", pooling: \"mean\" });\nprint(model);\nprint(scorer.task);"),
    m("Model", "summary", "model.summary()", "Trainable and frozen parameters per module, the totals and the trainable share.", "print(model.summary());"),
    m("Model", "freeze", "model.freeze(selector)", "Freezes what a selector names: a module path (\"encoder.layer.3\"), a layer range (\"encoder.layer.0-3\"), a glob (\"encoder.layer.*.attention\", \"*.bias\") or a kind: all, embeddings, encoder, head, norm, bias, lora, adapter. Commas or an array join selectors. A name that matches nothing lists the closest module names. Returns the number of tensors named.", "model.freeze(\"embeddings\");\nmodel.freeze([\"encoder.layer.0-1\", \"*.bias\"]);"),
    m("Model", "unfreeze", "model.unfreeze(selector)", "Makes what a selector names train again (see freeze).", "model.unfreeze(\"encoder.layer.0-1\");\nmodel.unfreeze(\"all\");"),
    m("Model", "freeze_all", "model.freeze_all()", "Freezes every parameter.", "model.freeze_all();\nmodel.unfreeze(\"head\");"),
    m("Model", "unfreeze_all", "model.unfreeze_all()", "Makes every parameter the model uses train.", "model.unfreeze_all();"),
    m("Model", "train_only", "model.train_only(selector or [selectors])", "Freezes everything, then unfreezes what the selectors name: train_only(\"head\") trains the classifier alone.", "model.train_only(\"head\");\nprint(model.trainable_params);\nmodel.unfreeze_all();"),
    m("Model", "trainable_layers", "model.trainable_layers(n)", "Trains the head and the last n transformer layers (the first -n when n is negative); freezes the rest.", "model.trainable_layers(2);     // the last 2 layers and the head\nprint(model.summary());\nmodel.unfreeze_all();"),
    m("Model", "select", "model.select(selector)", "The names of the parameters a selector names, to check a pattern before freezing.", "print(model.select(\"encoder.layer.*.attention.self.query\"));"),
    m("Model", "layer_groups", "model.layer_groups()", "The layer groups from the top down (head, the last layer, ..., embeddings), as gradual unfreezing and layer_decay walk them.", "print(model.layer_groups());   // [\"head\", \"encoder.layer.5\", ..., \"embeddings\"]"),
    m("Model", "add_lora", "model.add_lora(#{ r: 8, alpha: 16, dropout: 0.1, targets: [\"query\", \"value\"], rslora: false, dora: false })", "Adds LoRA updates (W + alpha/r B A) to the linear layers the targets name (a last name, a module path or a glob; PEFT's defaults when omitted) and freezes everything except them and the head. rslora scales by alpha/sqrt(r) instead (rank-stabilized LoRA, steadier at high ranks); dora adds a trainable magnitude per output row of W + alpha/r B A (DoRA), as PEFT's use_rslora and use_dora. Returns a line with the trainable share.", "let m = load_model(\"minilm\", #{ labels: 2, pooling: \"mean\" });\nprint(m.add_lora(#{ r: 8, alpha: 16, targets: [\"query\", \"value\"] }));"),
    m("Model", "merge_lora", "model.merge_lora()", "Folds the LoRA updates into the weights and removes them; the outputs stay the same. save() merges on its own, so this is for speed at inference.", "let m = load_model(\"minilm\", #{ labels: 2, pooling: \"mean\" });\nm.add_lora(#{ r: 4 });\nprint(m.merge_lora());           // layers merged"),
    m("Model", "add_adapters", "model.add_adapters(#{ size: 64 })", "Adds Houlsby bottleneck adapters after the attention and the feed-forward of every layer and freezes everything except them, the LayerNorms and the head.", "let m = load_model(\"minilm\", #{ labels: 2, pooling: \"mean\" });\nprint(m.add_adapters(#{ size: 32 }));"),
    m("Model", "add_head", "model.add_head(name, #{ labels, pooling: \"mean\", task: \"classify\" })", "Adds another head on the same backbone (multi-task), for any task. It is parked until use_head(name); a parked head is frozen and left out of counts.", "let m = load_model(\"minilm\", #{ labels: [\"rotten\", \"fresh\"], pooling: \"mean\" });\nm.add_head(\"topic\", #{ labels: [\"business\", \"entertainment\", \"politics\", \"sports\", \"tech\"] });\nm.add_head(\"stars\", #{ task: \"regression\" });\nprint(m.heads);"),
    m("Model", "task", "model.task", "What the active head predicts: classify, multi_label or regression.", "print(model.task);"),
    m("Model", "use_head", "model.use_head(name)", "Makes a head the active one: fit, evaluate, predict and labels use it. The head it replaces keeps its weights and its freezing.", "let m = load_model(\"minilm\", #{ labels: 2, pooling: \"mean\" });\nm.add_head(\"topic\", #{ labels: 5 });\nm.use_head(\"topic\");\nprint(m.labels);"),
    m("Model", "head", "model.head", "The active head's name (\"main\" for the head the model was loaded with).", "print(model.head);             // \"main\""),
    m("Model", "heads", "model.heads", "Every head's name, the active one first.", "print(model.heads);"),
    m("Model", "save_adapter", "model.save_adapter(dir)", "Saves the LoRA or adapter tensors together with the head (and anything else that differs from the base model) as adapter_config.json and adapter_model.safetensors, PEFT's layout. Returns the folder.", "let m = load_model(\"minilm\", #{ labels: 2, pooling: \"mean\" });\nm.add_lora(#{ r: 4 });\nprint(m.save_adapter(\"out/api-examples/lora\"));"),
    m("Model", "load_adapter", "model.load_adapter(dir)", "Adds the adapter a save_adapter folder describes to this (base) model and loads its tensors, head included.", "let base = load_model(\"minilm\", #{ labels: 2, pooling: \"mean\" });\nbase.load_adapter(\"out/api-examples/lora\");   // a folder save_adapter wrote\nprint(base.summary());"),
    m("Model", "save", "model.save(dir)", "Saves config.json, model.safetensors and the tokenizer files (Hugging Face layout), written beside the target and renamed into place. Returns the folder.", "let dir = model.save(\"out/api-examples/model\");\nlet again = load_model(dir);"),
    m("Model", "embed", "model.embed(texts)", "Sentence embeddings: the mean of the last hidden states over real tokens, L2-normalized (what all-MiniLM-L6-v2 was trained for). One array of floats per text.", "let v = model.embed([\"a good film\", \"a great movie\"]);\nprint(v[0].len());               // 384"),
    m("Model", "predict", "model.predict(texts)", "The same as predict(model, texts).", "print(model.predict([\"What a delight.\"]));"),
    m("Model", "config", "model.config", "The checkpoint's config.json as a map.", "print(model.config.num_hidden_layers);"),
    m("Model", "parameters", "model.parameters()", "Every parameter: name, shape and whether it trains.", "for p in model.parameters() { if p.name.starts_with(\"classifier\") { print(p); } }"),
    m("Model", "labels", "model.labels", "The names of the head's outputs, by id: classes, labels (multi-label) or outputs (regression).", "print(model.labels);"),
    m("Model", "device", "model.device", "Where the model's weights are: cpu or cuda.", "print(model.device);"),
    m("Model", "trainable_params", "model.trainable_params", "How many parameters train.", "print(model.trainable_params);"),
    m("Model", "total_params", "model.total_params", "How many parameters the model has.", "print(model.total_params);"),
    f("generate", "generate(model, prompt, #{ max_new_tokens: 64, temperature: 0.0, top_k: 0, top_p: 1.0, repetition_penalty: 1.0, seed: 0, stop: [\"\\n\\n\"], stream: true|false|\"stdout\", precision: \"fp32\" })", "Continues a prompt with a language model and returns the new text (without the prompt). The prompt is a string, used as it is, or a chat: an array of #{ role, content } messages (system, user, assistant), rendered with the model's chat template and the opening of the assistant's turn. An array of prompts (strings or chats) is a batch, left-padded, and gives an array of texts. temperature 0 decodes greedily (the default unless the model's generation_config.json samples); above 0 it samples, among the top_k likeliest tokens (0: all) and the fewest whose probabilities sum to top_p, with the seed; repetition_penalty above 1 discourages tokens already present (CTRL's penalty, as transformers). Generation stops at the model's end-of-sequence token, at any `stop` string (cut off), after max_new_tokens, or at the context's end. A KV cache keeps each step to one token. precision (fp32, bf16 or fp16; the run's --precision unless given) runs the forward passes under autocast, the next token chosen from fp32 scores. One prompt's text streams into the notebook cell as it is generated (`tunebook run` shows it on stderr when that is a terminal, so that print(generate(...)) prints it once; stream: \"stdout\" streams it to standard output instead, stream: false keeps it quiet). An interrupt stops at the next token.", "let lm = load_model(\"smollm2\");\nprint(generate(lm, [#{ role: \"user\", content: \"Name a colour.\" }], #{ max_new_tokens: 8 }));\nprint(generate(lm, \"The capital of France is\", #{ max_new_tokens: 4, temperature: 0.7, top_p: 0.9, seed: 1, stream: false }));"),
    f("apply_chat_template", "apply_chat_template(model, messages, #{ add_generation_prompt: false })", "The text a chat becomes for the model: its Jinja chat template (from tokenizer_config.json, chat_template.jinja or the GGUF's metadata) rendered as transformers' apply_chat_template renders it. add_generation_prompt appends the opening of the assistant's turn, as generate does.", "let lm = load_model(\"smollm2\");\nprint(apply_chat_template(lm, [#{ role: \"user\", content: \"Hi!\" }], #{ add_generation_prompt: true }));"),
    f("rouge_l", "rouge_l(predictions, references)", "ROUGE-L of generated texts against references (the longest common subsequence of words, as an F-measure; words lower-cased, split on everything but letters and digits, as Google's rouge_score does): #{ precision, recall, f1, per_row }, means over the rows.", "print(rouge_l([\"Bank raises rates\"], [\"Bank of England raises interest rates\"]).f1);"),
    m("LanguageModel", "tokens", "model.tokens(text)", "The tokens a text becomes, as the vocabulary spells them (Ġ marks a leading space in byte-level BPE).", "let lm = load_model(\"smollm2\");\nprint(lm.tokens(\"Hello 2024!\"));   // [\"Hello\", \"Ġ\", \"2\", \"0\", \"2\", \"4\", \"!\"]"),
    m("LanguageModel", "encode", "model.encode(text)", "The token ids of a text.", "let lm = load_model(\"smollm2\");\nprint(lm.encode(\"Hello\"));"),
    m("LanguageModel", "decode", "model.decode(ids)", "The text of token ids, special tokens included.", "let lm = load_model(\"smollm2\");\nprint(lm.decode(lm.encode(\"Hello world\")));"),
    m("LanguageModel", "chat_template", "model.chat_template", "The model's Jinja chat template (unit if it has none).", "let lm = load_model(\"smollm2\");\nprint(lm.chat_template.len());"),
    m("LanguageModel", "save", "model.save(path, #{ gguf_type: \"f16\"|\"q8_0\"|\"f32\" })", "Saves a language model: to a folder in the Hugging Face layout (config.json with the architecture's class, model.safetensors, tokenizer.json, tokenizer_config.json with the chat template, generation_config.json), or, for a path ending in .gguf, to one GGUF file with the tokenizer and chat template in its metadata and the weight matrices as F16 (the default), Q8_0 or F32 (Llama, Mistral and Qwen2). Written atomically. Returns the path.", "let lm = load_model(\"smollm2\");\nprint(lm.save(\"out/api-examples/smollm2.gguf\", #{ gguf_type: \"q8_0\" }));"),
    m("ChatDataset", "tokenize", "chats.tokenize(language_model, #{ max_len: 512, train_on: \"answers\"|\"all\", overflow: \"truncate\"|\"drop\" })", "Tokenizes examples for supervised fine-tuning: each conversation is rendered with the model's chat template, and the next-token labels cover the assistant's turns only, their end-of-turn token included, so that the model learns to answer and to stop (train_on: \"all\" learns every token). A prompt/completion row learns the completion and the end-of-sequence token. Rows longer than max_len are cut (overflow: \"truncate\") or dropped, and a note counts them and any row left without an answer token. A plain text dataset tokenized for a language model (continued pretraining) learns every token. fit, evaluate and loader then work as for encoders: the loss is the mean next-token cross-entropy over every label token of a step (gradient accumulation included), and perplexity its exponential.", "let lm = load_model(\"smollm2\");\nlet chats = dataset([#{ messages: [#{ role: \"user\", content: \"Say hi.\" }, #{ role: \"assistant\", content: \"Hi!\" }] }]);\nlet tokens = chats.tokenize(lm, #{ max_len: 128 });\nprint(tokens.row(0).labels.filter(|l| l != -100).len());"),
    m("TokenizedDataset", "row", "tokens.row(i)", "Row i as tokenized: #{ text, input_ids, labels } (labels for token and language-model data; -100 where nothing is learned).", "let tokens = data.train.take(4).tokenize(model, #{ max_len: 32 });\nprint(tokens.row(0).input_ids.len());"),
    m("ChatDataset", "split", "chats.split(#{ val: 0.1, seed: 0 })", "Shuffles with the seed and splits off a validation part (a share below 1 or a count): #{ train, val }.", "let chats = dataset([#{ prompt: \"1+1=\", completion: \"2\" }, #{ prompt: \"2+2=\", completion: \"4\" }, #{ prompt: \"3+3=\", completion: \"6\" }]);\nprint(chats.split(#{ val: 1 }).val.len());"),
    m("LanguageModel", "logits", "lm.logits(ids)", "The next-token scores [batch, tokens, vocabulary] for token ids (one array, or arrays of one length), as a Tensor: what generate samples from.", "let lm = load_model(\"smollm2\");\nlet scores = lm.logits(lm.encode(\"The capital of France is\"));\nprint(scores.shape);"),
    m("LanguageModel", "add_lora", "model.add_lora(#{ r: 8, alpha: 16, dropout: 0.05, targets: [\"q_proj\", \"v_proj\"], rslora: false, dora: false })", "Adds LoRA updates to a language model's linear layers (every projection of attention and the MLP by default: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj; c_attn, c_proj, c_fc for GPT-2) and freezes everything else. rslora scales the update by alpha/sqrt(r) (rank-stabilized LoRA); dora learns a magnitude per output row (DoRA), as PEFT's use_rslora and use_dora. save merges them into the weights; save_adapter writes them alone in PEFT's layout (task_type CAUSAL_LM), which PeftModel.from_pretrained loads onto the base model, and load_adapter reads such a folder, PEFT's own included.", "let lm = load_model(\"smollm2\");\nprint(lm.add_lora(#{ r: 8, alpha: 16 }));"),
    f("load_dataset", "load_dataset(name_or_path, #{ text: \"text\", pair, label: \"label\", task: \"classify\"|\"multi_label\"|\"regression\"|\"token_classify\", separator: \"|\", split, stream: false, test: false, size, extensions: [\"txt\"], recursive: false })", "Loads a named dataset from the cache (\"rotten_tomatoes\": review snippets, rotten/fresh; \"bbc_news\": articles in 5 topics; images: \"fashion_mnist\", 60,000 28x28 clothing images in 10 classes, or its 10,000 test images with test: true, and \"mnist\", 10,000 handwritten digits) or a file: CSV with a header (TSV when it ends in .tsv; quoted fields may span lines) or JSON Lines (.jsonl, one object per line), or CoNLL (.conll: a word and its tag per line, a blank line between sentences; task token_classify), or Parquet (.parquet, a glob of shards such as \"data/train-*.parquet\", or a folder of them: a Hugging Face Hub dataset's folder whose files are named by split, train-00000-of-00002.parquet, test-..., loads as a map of datasets by split name, and `split: \"train\"` picks one), or a folder written by Hugging Face datasets' save_to_disk (a Dataset, or a DatasetDict, which loads as a map by split name: parts.train, parts.validation). Parquet and datasets folders keep their features: a ClassLabel column gives the class names in its order (its -1, a withheld label, is a missing label; a split whose labels are all missing loads without labels, for predict), a list of ClassLabel the tag or label names; integer labels without names are classes in numeric order; a null text reads as empty (counted in a note); a text column that is not text is refused with the columns and their types; a table whose columns are `messages`, `prompt` and `completion`, or `instruction` and `output` loads as a ChatDataset. Splits share one order of class names. With stream: true a Parquet source larger than memory is read as it is needed: only its label columns are read at load time, and a StreamedDataset offers len, labels, head, take, split (row numbers; only the labels are read) and tokenize(model), whose loader reads and tokenizes each batch's texts from the files (a shuffled loader shuffles chunks of 4,096 rows and the rows within each), so memory stays flat; token classification, bucket, packing and augment need the data in memory. Or a folder with one subfolder per class: of text files (one row per file; only files ending in one of `extensions`, .txt by default, are read, hidden files are ignored, and other files are counted in one note; folders inside a class folder are reported, or read as that class with recursive: true; a file with a UTF-16 byte-order mark is decoded as UTF-16, a binary file is skipped, and files that are not UTF-8 are read as Latin-1, each kind said in one line), or of PNG and JPEG images (an image dataset; grey if every image is, else RGB; `size: 32` or `size: [height, width]` resizes them, which images of different sizes need). A JSON Lines file whose rows hold `messages` (an array of #{ role, content }), `prompt` and `completion`, or `instruction` (with an optional `input`) and `output` loads as a ChatDataset, for supervised fine-tuning of a language model (so does dataset(rows) with such rows). A file with only a text column (or any file with label: \"\") loads without labels, for predict; fit and evaluate refuse it. Rows whose label cell is empty are dropped, and the count and lines are said; empty or whitespace-only texts are kept and counted in a note (.clean() drops them). `text` names the text column and `label` (or `labels`) the label column, or several; when they are not given and the file has no `text` or `label` column, Hugging Face's usual names are used: `sentence` for the text, `labels` for the labels (for token_classify: `tokens`, and `ner_tags` or `tags`); `pair` names a second text column for sentence-pair tasks (entailment, paraphrase, headline and story), tokenized as [CLS] text [SEP] pair [SEP] with token types 0 and 1. For multi_label data, one column holds the labels joined by `separator` (\"sport|tech\"; empty for none), or each of several columns holds 0 or 1. For regression, each label column holds a number (one output per column). For token_classify, the text field holds an array of words (or space-separated words) and the label field one tag per word. A cell that does not fit is an error with its file and line.", "let reviews = load_dataset(\"rotten_tomatoes\");\nlet news = load_dataset(\"bbc_news\");\nprint(news.labels());"),
    m("Dataset", "clean", "data.clean(#{ strip_html: false, unicode: false, lowercase: false, min_chars: 1, max_chars, dedupe: true })", "Cleans the texts and prints how many rows each step removed or changed. Always: control characters and runs of whitespace become one space, and empty rows go. On request: strip HTML tags and decode entities, normalize Unicode (NFKC), lower-case, drop rows shorter than min_chars or longer than max_chars (in characters). dedupe drops rows whose text repeats an earlier one.", "let cleaned = load_dataset(\"rotten_tomatoes\").clean();\nlet short = load_dataset(\"rotten_tomatoes\").clean(#{ lowercase: true, max_chars: 80 });"),
    m("Dataset", "split", "data.split(#{ val: 0.2, test, seed, stratify: false })", "Shuffles with the seed and splits off a validation part and, with `test`, a test part: each a share below 1 (0.2) or a number of rows (500). stratify keeps each class's share the same in every part (one class per row only). Returns #{ train, val } or #{ train, val, test }.", "let parts = load_dataset(\"bbc_news\").split(#{ val: 0.15, test: 0.15, seed: 1, stratify: true });\nprint(parts.test.labels());"),
    m("Dataset", "kfold", "data.kfold(#{ k: 5, seed, stratify: false })", "k folds for cross-validation: an array of #{ train, val }, where each row validates in exactly one fold. stratify deals each class's rows out evenly.", "let folds = load_dataset(\"rotten_tomatoes\").take(200).kfold(#{ k: 4, seed: 1, stratify: true });\nprint(folds.len());"),
    f("dataset", "dataset(rows, #{ text: \"text\", pair, label: \"label\", task, separator })", "A dataset from an array of maps, one per row; options as load_dataset's. A label may be a string, a number, or an array of labels (multi_label).", "let tiny = dataset([#{ text: \"Loved it.\", label: \"pos\" }, #{ text: \"Hated it.\", label: \"neg\" }]);\nprint(tiny.labels());"),
    m("Dataset", "take", "data.take(n)", "The first n rows.", "let small = data.train.take(100);"),
    m("Dataset", "shuffle", "data.shuffle(seed)", "The rows in a seeded random order.", "let mixed = data.train.shuffle(7);"),
    m("Dataset", "labels", "data.labels()", "Rows per class, as a map.", "print(data.train.labels());"),
    m("Dataset", "majority", "data.majority()", "The share of rows in the most common class: the accuracy of always guessing it, the baseline a classifier must beat (unit for regression, multi-label or no rows). Image datasets have it too.", "print(`always guessing the commonest class scores ${data.val.majority()}`);"),
    m("Dataset", "head", "data.head(n)", "The first n rows as maps of text and label.", "print(data.train.head(3));"),
    m("Dataset", "len", "data.len()", "The number of rows.", "print(data.val.len());"),
    m("Dataset", "tokenize", "data.tokenize(model, #{ max_len: 128 })", "Tokenizes every text with the model's tokenizer, truncating to max_len tokens.", "let tokens = data.train.take(64).tokenize(model, #{ max_len: 64 });"),
    m("TokenizedDataset", "loader", "tokens.loader(#{ batch: 16, shuffle: false, seed, drop_last: false, bucket: false, packing: false, augment: #{ synonyms, insert, swap, delete, p: 0.5 } })", "Batches of rows, each padded to its longest row. bucket batches rows of similar length together (sorted within pools of 50 batches, the batches then shuffled), which cuts padding and time per epoch; the batches are less random. packing (language-model data) puts several examples in each row of max_len tokens (best fit, decided once; the rows shuffled per epoch), each with its own positions and attending only to itself, so almost nothing is padding; batch then counts packed rows. augment, for a training loader, applies EDA on the fly: each epoch, each text is changed with probability p by one of the operations turned on (chosen at random), and re-tokenized. synonyms replaces that share of the words with a WordNet synonym, insert adds synonyms of random words, swap exchanges random pairs, delete drops each word with that probability. The draw is reproducible from the seed; evaluation never augments.", "let batches = data.train.take(64).tokenize(model, #{ max_len: 64 }).loader(#{ batch: 16, shuffle: true });\nlet varied = data.train.take(64).tokenize(model, #{ max_len: 64 }).loader(#{ batch: 16, shuffle: true, augment: #{ synonyms: 0.1, swap: 0.1 } });"),
    f("augment_text", "augment_text(text, #{ synonyms, insert, swap, delete, seed })", "One EDA change of a text, to see what training augmentation does: one of the operations turned on (each the share of words it changes), with synonyms from WordNet.", "print(augment_text(\"a good film with a fine cast\", #{ synonyms: 0.3, seed: 1 }));"),
    m("ImageDataset", "loader", "images.loader(#{ batch: 16, shuffle: false, seed, drop_last: false, normalize: true, model, size, augment: #{ crop: 0, flip: false, rotate: 0, resized_crop, color_jitter } })", "Batches of images as normalized float tensors. model: an image model the batches are for: its input size (grey images become RGB for a colour model; validation resizes the shorter side and crops the centre) and, for a pretrained backbone, its own normalization; size resizes without a model. normalize is true (the dataset's per-channel mean and std: after a split, those of its training part, which the validation and test parts share, so nothing is learned from them; for a separately loaded test set, pass normalize: train.stats()), false (pixels in 0-1), or #{ mean: [...], std: [...] }. augment, for a training loader: crop pads by that many pixels and crops back at a random offset; flip mirrors left-right half the time; rotate turns by an angle drawn from ±that many degrees (up to 45), sampled bilinearly; resized_crop (true, or #{ scale: [0.08, 1.0], ratio: [0.75, 1.333] }) crops a random share of the area at a random aspect ratio and resizes it, as torchvision's RandomResizedCrop; color_jitter (a strength, or #{ brightness, contrast, saturation, hue }) as torchvision's ColorJitter. Augmentation is drawn afresh each epoch, reproducibly from the seed, in the loader's background thread.", "let images = load_dataset(\"fashion_mnist\").take(256).split(#{ val: 0.25, seed: 1 });\nlet train_images = images.train.loader(#{ batch: 32, shuffle: true, augment: #{ crop: 2, flip: true } });\nlet big = images.train.loader(#{ batch: 32, size: 64, augment: #{ resized_crop: #{ scale: [0.6, 1.0] }, color_jitter: 0.2 } });\nprint(train_images);"),
    m("ImageDataset", "stats", "images.stats()", "The per-channel mean and standard deviation of the pixels (scaled to 0-1) that loaders normalize with, as a map #{ mean, std } that loader's normalize also takes: those of the set as loaded, or after a split those of the training part.", "print(load_dataset(\"mnist\").stats());"),
    f("image_model", "image_model(images, #{ arch: \"cnn\"|\"mlp\", layers: [32, 64], dropout: 0.25, task, labels, input, device })", "A small image network, freshly initialized: a CNN (blocks features.N of a 3x3 convolution with `layers[N]` channels, ReLU and 2x2 max-pooling; then dropout and a classifier) or an MLP (layers.N of `layers[N]` units with ReLU and dropout; then a classifier). The input shape and labels come from the dataset, or from `input` ([channels, height, width]) and `labels` without one. It freezes, trains, evaluates, predicts (predict(model, images)) and saves like a text model; load_model reads the saved folder back.", "let images = load_dataset(\"fashion_mnist\").take(64);\nlet cnn = image_model(images, #{ arch: \"cnn\", layers: [8, 16] });\nprint(cnn.summary());\nprint(predict(cnn, images.take(2)));"),
    m("ImageModel", "new_head", "model.new_head(labels)", "Replaces an image model's head with a freshly initialized one for new labels (a count, an array of names, or an image dataset's classes), keeping the trained layers below: transfer to another task, e.g. from clothing to digits. What trains stays as it was; freeze the rest with train_only(\"head\").", "let images = load_dataset(\"fashion_mnist\").take(64);\nlet cnn = image_model(images, #{ arch: \"cnn\", layers: [8, 16] });\ncnn.new_head(load_dataset(\"mnist\").take(64));\nprint(cnn.labels);"),
    f("fit", "fit(model, train, val, #{ optimizer: \"adamw\"|\"adam\"|\"sgd\", momentum: 0.0, nesterov: false, lr: 2e-5, weight_decay: 0.01, schedule: \"linear\", warmup: 0.1, epochs: 3, max_steps, max_grad_norm: 1.0, early_stopping: #{ metric: \"val_loss\"|\"val_accuracy\"|\"val_f1\"|\"val_mae\"|\"val_r2\", patience: 3, min_delta: 0.0, restore_best: true }, gradual_unfreezing: k, freeze_epochs: n, layer_decay: 0.8, lr_groups: [#{ modules: \"embeddings\", lr: 1e-5 }], loss: \"mse\"|\"mae\"|\"huber\", label_smoothing: 0.0, precision: \"fp32\"|\"bf16\"|\"fp16\", class_weights: \"balanced\"|[w...], accumulate: 1, checkpointing: false, eval_every, track_layers: false, checkpoint: #{ dir, keep: 2 }, resume: dir, samples: [prompt, ...], log: \"tensorboard\", log_dir, controls: false })", "Trains the model on the train loader, evaluating on val after each epoch. optimizer is AdamW (decoupled weight decay), Adam or SGD (L2 weight decay; momentum and Nesterov), each matching PyTorch's. schedule is constant, linear, cosine (both with warmup, as Hugging Face's), one_cycle (PyTorch's OneCycleLR, without momentum cycling) or reduce_on_plateau (halves the rate after 2 epochs without a lower val_loss). The loss follows the head's task: cross-entropy, binary cross-entropy (multi_label) or, for regression, `loss` mse (the default), mae or huber; validation loss always uses the task's default, so runs compare. label_smoothing and class_weights shape the cross-entropy of a classify head (\"balanced\" weighs classes by rows / (classes * class rows)); accumulate sums the gradients of that many batches into one step; eval_every also evaluates every N steps within epochs (run.evaluations). track_layers records, per layer group and epoch, the weight change and the mean gradient norm for plot_layers (it keeps a copy of the starting weights). checkpoint writes weights, optimizer state and the run after every epoch (atomically; the last `keep` and the best are kept); resume continues from the latest checkpoint in a folder so that the loss curve matches an uninterrupted run. Early stopping ends the run when the metric has not improved for `patience` epochs and puts back the best epoch's weights. gradual_unfreezing trains the head alone first and opens one more layer group from the top every k epochs; freeze_epochs trains the head alone for n epochs, then everything (both keep what you froze frozen, and put your freezing back at the end). layer_decay multiplies the rate by this factor per group going down; lr_groups sets rates for what selectors name. samples (language models) generates greedy answers to fixed prompts (strings or chats; or #{ prompts, max_new_tokens: 48 }) before training and after every evaluation, shown in the live display beside the first answers and kept in run.samples. log: \"tensorboard\" writes the run as TensorBoard event files while it trains, into log_dir (default out/runs/<script or notebook>-<date>-<time>; giving log_dir alone also turns it on): train/loss, train/learning_rate, train/grad_norm and train/epoch per step, eval/loss and each metric per evaluation, epoch/train_loss per epoch, the run's totals (run/train_seconds, run/samples_per_second, ...) and its settings for the HParams table; view them with tensorboard --logdir out/runs, and load_run(folder) reads them back. With precision: \"bf16\" or \"fp16\", fit runs the forward passes (training and validation) under libtorch's autocast in that type, on the CPU (processors with AVX-512 BF16/FP16 or AMX gain; on others it is slower, and fit warns) or a GPU, while weights, gradients and optimizer state stay fp32 and the loss reads the outputs in fp32 (a language model's chunked loss takes each chunk's softmax in fp32), for every kind of model. fp16 scales the loss as torch.amp.GradScaler does (from 65536; an overflowing step is skipped and the scale halved; it doubles after 2000 good steps; the scale is kept in checkpoints; run.loss_scale, run.skipped_steps); bf16 needs no scaling. checkpointing: true (gradient checkpointing, as Hugging Face's gradient_checkpointing_enable) keeps no activations inside the transformer blocks during the forward pass and makes them again, block by block, in the backward pass, with the same dropout masks and autocast: the same loss and gradients for about a third more compute and the activation memory of one block instead of all; it works with frozen embeddings, partial freezing, LoRA and adapters (each block's trainable weights are inputs of its checkpoint) and applies to text encoders and language models, on one process (with --nproc it is refused for now). controls: true shows, in a notebook, a Stop button and a live readout of the step, learning rate and loss as widgets: the button stops training at the next batch like an interrupt, and the cell goes on with the run so far (run.interrupted is true); elsewhere it changes nothing. Returns the run. Interrupting stops at the next batch and keeps the weights learned so far.", "let run = fit(model, train, val, #{ lr: 5e-5, epochs: 1, warmup: 0.1 });\nprint(run);"),
    f("lr_find", "lr_find(model, train, #{ start: 1e-7, end: 10.0, steps: 100, weight_decay: 0.01 })", "The learning-rate range test (as fastai's lr_find): trains up to `steps` batches with the rate rising exponentially from start to end, stops when the smoothed loss passes 4 times its minimum, and suggests the rate where the loss falls fastest. The model's weights are put back afterwards. plot(result) draws loss against rate.", "let found = lr_find(model, train, #{ steps: 20 });\nprint(found.suggestion);"),
    m("LrFind", "suggestion", "found.suggestion", "The rate where the smoothed loss falls fastest.", "let found = lr_find(model, train, #{ steps: 20 });\nlet run = fit(model, train, val, #{ lr: found.suggestion, epochs: 1 });"),
    m("LrFind", "min_loss_lr", "found.min_loss_lr", "The rate with the lowest smoothed loss, divided by 10.", "print(lr_find(model, train, #{ steps: 20 }).min_loss_lr);"),
    m("LrFind", "lrs", "found.lrs", "The rate of each step.", "print(lr_find(model, train, #{ steps: 20 }).lrs.len());"),
    m("LrFind", "losses", "found.losses", "The smoothed loss after each step.", "print(lr_find(model, train, #{ steps: 20 }).losses[0]);"),
    f("plot", "plot(run | lr_find result | runs, #{ title, width, height, names, metric, by: \"step\"|\"epoch\", smooth: 0.9 })", "Charts a run: training loss (raw, and smoothed with weight `smooth`; 0 draws it raw) with validation loss, beside a validation metric (`metric`: accuracy, f1, mse, mae or r2; the task's headline metric by default), against optimizer steps or, with by: \"epoch\", epochs; every validation result is a point, mid-epoch ones (eval_every) included, and the epoch early stopping kept and any interrupt are marked. Given what lr_find returned: the loss against the rate, the suggestion marked. Given several runs (an array, named by `names` or run 1, run 2, ...; or a map of name to run): their validation loss and metric by epoch overlaid, one colour each. Every plot function shows its chart (inline in a notebook, a PNG under out/plots/ from `tunebook run`) and returns it, to save, retitle or resize; title, width and height apply at once. Colours are the Okabe-Ito palette, safe for colour-blind readers.", "plot(run);\nplot(run, #{ metric: \"f1\", by: \"epoch\", smooth: 0.0, width: 700, height: 300 });\nplot([run, run], #{ names: [\"first\", \"again\"], title: \"Two runs\" });"),
    f("plot_costs", "plot_costs(runs, #{ title, width, height, names })", "For several runs (an array or a map of name to run, as plot takes), bars of the final headline metric, the trainable parameters (millions) and the training time (seconds) side by side: what full, partial and LoRA fine-tuning cost for what they reach.", "plot_costs(#{ full: run, again: run });"),
    f("plot_lr", "plot_lr(run, #{ title, width, height })", "The learning rate of every optimizer step of a run: warmup, decay, restarts and plateau reductions as they happened.", "plot_lr(run);"),
    f("plot_layers", "plot_layers(run, #{ title, width, height })", "Per layer group (the head, each layer, the embeddings), how far the weights moved from the start of the run (the norm of the change over the starting norm) and the mean gradient norm, by epoch: which layers actually learn. Needs a run fitted with track_layers: true.", "let tracked = fit(model, train, val, #{ epochs: 1, track_layers: true });\nplot_layers(tracked);"),
    f("plot_freeze", "plot_freeze(model, #{ title, width, height })", "Charts what trains and what is frozen: per module (embeddings, each layer, the head) the trainable and frozen parameters as stacked bars, with the totals in the title.", "model.trainable_layers(2);\nplot_freeze(model);\nmodel.unfreeze_all();"),
    f("plot_confusion", "plot_confusion(result, #{ title, width, height })", "The confusion matrix of what evaluate returned for a classifier, as a heatmap: true classes down, predicted across, each cell with its count and shaded by its share of the row, so the diagonal reads as each class's recall.", "let result = evaluate(model, val);\nplot_confusion(result);"),
    f("plot_scores", "plot_scores(result, #{ title, width, height })", "Precision, recall and F1 of each class (from what evaluate returned for a classifier) as grouped bars, with the macro F1 in the title.", "plot_scores(evaluate(model, val));"),
    f("plot_balance", "plot_balance(dataset, #{ title, width, height })", "Rows per class of a text or image dataset as bars with their counts, and the largest class's share: a glance at imbalance before training.", "plot_balance(data.train);"),
    f("plot_lengths", "plot_lengths(tokens, #{ title, width, height })", "A histogram of a tokenized dataset's lengths before truncation, with its max_len marked and the share of rows it cuts: the way to choose max_len.", "plot_lengths(data.train.take(200).tokenize(model, #{ max_len: 32 }));"),
    f("plot_cam", "plot_cam(image_model, image_file, #{ class, title, width, height })", "Grad-CAM: where a backbone looks when it names a class. The gradient of the class's score (the predicted class, or the label or index given) weighs each of the last convolution's feature maps; their weighted sum, kept where positive and resized to the image, is drawn as a heat map beside it, with the class and its probability.", "plot_cam(load_model(\"mobilenet_v2\"), photo(\"chelsea\"));"),
    f("photo", "photo(name)", "The path of one of the sample photographs the bootstrap fetches (from scikit-image's wheel): chelsea (a cat), coffee, rocket, motorcycle_left, astronaut.", "print(predict(load_model(\"mobilenet_v2\"), photo(\"coffee\")).label);"),
    f("plot_images", "plot_images(images | loader, #{ n: 8, title, width, height })", "The first n images with their labels. Given an image loader that augments, a second row shows the same images as the first epoch's augmentation draws them (crop and flip), before normalization.", "let images = load_dataset(\"fashion_mnist\").take(16);\nplot_images(images.loader(#{ augment: #{ crop: 3, flip: true } }), #{ n: 6 });"),
    m("Chart", "save", "chart.save(path, #{ title, width, height })", "Writes the chart as SVG or PNG, by the file's extension (another is an error), through a temporary file and a rename; the options apply to this file only. Returns the path.", "let chart = plot(run);\nchart.save(\"out/api-examples/curves.svg\");\nchart.save(\"out/api-examples/curves.png\", #{ width: 1200, height: 450 });"),
    m("Chart", "title", "chart.title(text)", "The same chart with a title above it (shown when it is the last value of a cell, or saved).", "let titled = plot_lr(run).title(\"Warmup, then linear decay\");\nprint(titled);"),
    m("Chart", "resize", "chart.resize(width, height)", "The same chart at another size in pixels (each side 120 to 4000).", "print(plot(run).resize(600, 300).width);"),
    f("find_batch_size", "find_batch_size(model, loader, #{ precision })", "Finds the largest batch whose training step fits in memory, as Hugging Face's auto_find_batch_size: it tries a whole step on the loader's longest rows (forward, loss and backward for each micro-batch of the accumulation that keeps the loader's batch, their gradients summed, and room for Adam's two moments of every trainable tensor), with a quarter more rows per micro-batch than the size tried as headroom for what a real run adds, starts at the loader's batch size, halves it after each allocation failure, and returns #{ batch, accumulate, loader, failed }: the batch that fitted, the accumulation that keeps the loader's effective batch, a copy of the loader with that batch, and the sizes that failed. The model learns nothing from it (no optimizer step; BatchNorm statistics are put back). precision is the run's (--precision) unless given. fit itself ends with an error that names the batch that failed and what to lower when a step runs out of memory, and the session keeps its variables.", "let found = find_batch_size(model, train);\nfit(model, found.loader, val, #{ accumulate: found.accumulate });"),
    f("evaluate", "evaluate(model, loader | texts, #{ precision })", "The loss and the task's metrics on every batch, without gradients; precision (fp32, bf16 or fp16 autocast; the run's --precision unless given) sets the forward passes' type. For a language model, given a text or an array of texts: #{ loss, perplexity, tokens }, the mean next-token cross-entropy over every position after the first (as transformers with labels=input_ids) and its exponential. Classification: #{ loss, accuracy, precision, recall, f1, per_class, confusion, rows } (macro averages; confusion rows are true classes, columns predicted). Multi-label: accuracy is the share of rows with every label right, precision, recall and F1 are per label (a label counts as predicted at probability 0.5) and macro-averaged; no confusion. Regression: #{ loss, mse, mae, r2, rows }. The loss is cross-entropy, binary cross-entropy or MSE.", "print(evaluate(model, val));"),
    f("predict", "predict(model, texts_or_dataset, #{ max_len: 128, head, top_k, threshold: 0.5, precision: \"fp32\" })", "A prediction for each text (or for one string, or each row of a text dataset, labelled or not), from the active head or the one `head` names; each holds its `text`. precision: \"bf16\" or \"fp16\" runs the forward passes under autocast (the probabilities are computed in fp64 from its logits). Classification: #{ label, score, scores } (the top class, its probability, and every class's probability by name; top_k: 3 adds `top`, the 3 likeliest as #{ label, score }, best first); multi-label: #{ labels, scores } (the labels at probability `threshold` or more, and every label's probability); regression: #{ value, values } (the first output, and every output by name); token_classify: #{ words, tags, scores } (a tag per word, from its first token). Sentence pairs go in as two-text arrays: predict(model, [[first, second], ...]). In a notebook the predictions show as a table, probabilities rounded (the values keep full precision). For an image model, predict(model, images) gives one prediction per image.", "for p in predict(model, [\"A warm, funny film.\", \"Dull.\"]) { print(`${p.label} ${p.score}`); }"),
    m("ImageModel", "predict", "predict(image_model, file_or_folder, #{ top_k: 5 })", "Predictions for an image file (a map) or every image in a folder (an array, in name order), each prepared as torchvision evaluates ImageNet models (the shorter side resized to size / 0.875, the centre cropped, the model's normalization): file, label, score, the top_k best classes, and every class's probability when there are at most 20. predict(image_model, images) predicts each image of a dataset.", "let p = predict(load_model(\"mobilenet_v2\"), photo(\"chelsea\"), #{ top_k: 3 });\nfor t in p.top { print(`${t.label} ${t.score}`); }"),
    m("ImageModel", "logits", "model.logits(images)", "An image model's outputs for a [n, c, h, w] Tensor of prepared (normalized) images, in evaluation mode.", "print(load_model(\"mobilenet_v2\").logits(zeros([1, 3, 224, 224])).shape);   // [1, 1000]"),
    m("Run", "val_accuracy", "run.val_accuracy", "Validation accuracy after the last epoch (for multi-label heads, the share of rows with every label right; unit for regression).", "print(run.val_accuracy);"),
    m("Run", "save", "run.save(path)", "Writes the run by the file's extension (atomically): .csv as one table for spreadsheets and pandas (a kind column, step, eval, epoch or run, and a column per value, blank where a row has none, as Lightning's CSVLogger); anything else as JSON Lines (a summary line, then one line per step and per epoch). load_run reads either back.", "run.save(\"out/api-examples/run.jsonl\");\nrun.save(\"out/api-examples/run.csv\");"),
    f("load_run", "load_run(path)", "A run that run.save wrote (JSON Lines or CSV), to chart or compare with plot(run), plot_costs and table.", "let old = load_run(\"out/api-examples/run.jsonl\");\nprint(old.history.len());\nprint(load_run(\"out/api-examples/run.csv\").history.len());"),
    m("Run", "val_f1", "run.val_f1", "Validation macro F1 after the last epoch (classification and multi-label).", "print(run.val_f1);"),
    m("Run", "val_mse", "run.val_mse", "Validation mean squared error after the last epoch (regression; unit otherwise).", "print(run.val_mse);"),
    m("Run", "val_mae", "run.val_mae", "Validation mean absolute error after the last epoch (regression; unit otherwise).", "print(run.val_mae);"),
    m("Run", "val_r2", "run.val_r2", "Validation R² after the last epoch (regression; unit otherwise): 1 is perfect, 0 no better than predicting the mean.", "print(run.val_r2);"),
    m("Run", "val_loss", "run.val_loss", "Validation loss after the last epoch.", "print(run.val_loss);"),
    m("Run", "best_val_accuracy", "run.best_val_accuracy", "The best validation accuracy of any epoch.", "print(run.best_val_accuracy);"),
    m("Run", "history", "run.history", "One map per epoch: epoch, train_loss, and val_loss with the task's metrics (val_accuracy and val_f1, or val_mse, val_mae and val_r2).", "for e in run.history { print(e); }"),
    m("Run", "step_history", "run.step_history", "One map per optimizer step: step, loss, lr, and grad_norm (the gradients' norm before clipping, as Hugging Face's Trainer logs it; unit when max_grad_norm is off).", "let last = run.step_history[-1];\nprint(`step ${last.step}: loss ${last.loss}, lr ${last.lr}, gradient norm ${last.grad_norm}`);"),
    m("Run", "samples", "run.samples", "A language model's answers to fit's sample prompts, before training and after each evaluation: step, epoch, prompt, text.", "let lm = load_model(\"smollm2\");\nlm.add_lora(#{ r: 4 });\nlet tokens = dataset([#{ prompt: \"Say hi.\", completion: \" Hi!\" }]).tokenize(lm, #{ max_len: 32 });\nlet r = fit(lm, tokens.loader(), #{ epochs: 1, samples: #{ prompts: [\"Say hi.\"], max_new_tokens: 4 } });\nfor s in r.samples { print(`${s.step}: ${s.text}`); }"),
    m("Run", "evaluations", "run.evaluations", "The evaluations between epoch ends (eval_every): step, epoch, val_loss and the task's metrics.", "let r = fit(model, train, val, #{ epochs: 1, eval_every: 2 });\nprint(r.evaluations.len());"),
    m("Run", "best_epoch", "run.best_epoch", "The best epoch under early stopping (unit without it).", "print(run.best_epoch);"),
    m("Run", "stopped_early_at", "run.stopped_early_at", "The epoch after which early stopping ended the run (unit if it did not).", "print(run.stopped_early_at);"),
    m("Run", "seconds", "run.seconds", "How long the run took.", "print(run.seconds);"),
    m("Run", "loss_scale", "run.loss_scale", "fp16's loss scale at the end of the run (as torch.amp.GradScaler's get_scale()); () in other precisions.", "print(run.loss_scale);"),
    m("Run", "skipped_steps", "run.skipped_steps", "Optimizer steps skipped because fp16 gradients overflowed (the scale was halved each time); 0 in other precisions.", "print(run.skipped_steps);"),
    m("Run", "samples_per_sec", "run.samples_per_sec", "Training throughput, evaluation excluded.", "print(run.samples_per_sec);"),
    m("Run", "train_seconds", "run.train_seconds", "Seconds spent training, evaluation excluded.", "print(run.train_seconds);"),
    m("Run", "seconds_per_epoch", "run.seconds_per_epoch", "Training seconds per epoch, evaluation excluded.", "print(run.seconds_per_epoch);"),
    m("Run", "trainable_params", "run.trainable_params", "Parameters that trained when the run started.", "print(run.trainable_params);"),
    m("Run", "total_params", "run.total_params", "All parameters of the model.", "print(run.total_params);"),
    m("Run", "optimizer_state_mb", "run.optimizer_state_mb", "Megabytes of optimizer state (Adam's moments of the parameters that trained).", "print(run.optimizer_state_mb);"),
    m("Run", "peak_memory_mb", "run.peak_memory_mb", "Peak resident memory of the process during the run, in megabytes (unit where the system does not say).", "print(run.peak_memory_mb);"),
    m("Run", "peak_gpu_memory_mb", "run.peak_gpu_memory_mb", "Peak memory allocated on the CUDA device during the run (torch.cuda.max_memory_allocated), in megabytes; unit on the CPU.", "print(run.peak_gpu_memory_mb);"),
    m("Run", "interrupted", "run.interrupted", "Whether an interrupt stopped the run.", "if run.interrupted { print(\"stopped early by the user\"); }"),
    m("Run", "steps", "run.steps", "Optimizer steps taken.", "print(run.steps);"),
    f("tensor", "tensor(nested_array)", "A tensor from nested arrays of numbers: int64 when every number is an integer, else float32. For teaching: shapes, kinds and arithmetic as in PyTorch.", "let t = tensor([[1.0, 2.0], [3.0, 4.0]]);\nprint(t);                      // tensor([1.0000, 2.0000, 3.0000, 4.0000], shape [2, 2], float32, cpu)\nprint((t * 2 + t).sum().item()); // 30.0"),
    m("Model", "weight", "model.weight(name)", "A copy of one parameter as a tensor (names as in model.parameters()), to look at values or check that a frozen weight did not change.", "let w = model.weight(\"classifier.weight\");\nprint(w.shape);                 // [2, 384]"),
    m("Tensor", "shape", "t.shape", "The size of each dimension.", "print(tensor([[1, 2, 3]]).shape);   // [1, 3]"),
    m("Tensor", "dtype", "t.dtype", "The element kind, as PyTorch names it: float32, int64, ...", "print(tensor([1.5]).dtype);        // float32"),
    m("Tensor", "device", "t.device", "Where the tensor is: cpu or cuda.", "print(tensor([1]).device);"),
    m("Tensor", "numel", "t.numel", "The number of elements.", "print(tensor([[1, 2], [3, 4]]).numel);   // 4"),
    m("Tensor", "item", "t.item()", "The value of a one-element tensor as a number.", "print(tensor([[1, 2], [3, 4]]).sum().item());   // 10"),
    m("Tensor", "to_array", "t.to_array()", "The values as nested arrays.", "print(tensor([[1, 2], [3, 4]]).to_array());"),
    m("Tensor", "sum", "t.sum()", "The sum of every element, as a one-element tensor.", "print(tensor([1, 2, 3]).sum());"),
    m("Tensor", "mean", "t.mean()", "The mean of every element (as float32).", "print(tensor([1, 2, 3]).mean().item());   // 2.0"),
    f("zeros", "zeros(shape)", "A float32 tensor of zeros of the given shape.", "print(zeros([2, 3]).shape);"),
    f("load_tensor", "load_tensor(path)", "A tensor from a safetensors file: the one named \"tensor\" (as t.save writes it), or the file's only tensor.", "tensor([[1.0, 2.0]]).save(\"out/t.safetensors\");\nprint(load_tensor(\"out/t.safetensors\"));"),
    m("Tensor", "save", "t.save(path)", "Writes the tensor to a safetensors file under the name \"tensor\" (safetensors.torch.load_file reads it).", "tensor([[1.0, 2.0]]).save(\"out/t.safetensors\");"),
    m("Tensor", "max", "t.max()", "The largest element.", "print(tensor([1, 5, 3]).max().item());"),
    m("Tensor", "min", "t.min()", "The smallest element.", "print(tensor([1, 5, 3]).min().item());"),
    m("Tensor", "abs", "t.abs()", "Element-wise absolute values.", "print(tensor([-1, 2]).abs());"),
    m("Tensor", "norm", "t.norm()", "The L2 norm of all elements.", "print(tensor([3.0, 4.0]).norm().item());   // 5.0"),
    m("Tensor", "transpose", "t.transpose()", "A 2-D tensor's transpose.", "print(tensor([[1, 2, 3]]).transpose().shape);   // [3, 1]"),
    m("Tensor", "matmul", "a.matmul(b)", "Matrix product; the inner sizes must agree.", "let a = tensor([[1.0, 2.0]]);\nprint(a.matmul(a.transpose()).item());   // 5.0"),
    m("Tensor", "reshape", "t.reshape(shape)", "The same elements in a new shape; -1 lets one size follow from the others.", "print(tensor([1, 2, 3, 4]).reshape([2, -1]).shape);   // [2, 2]"),
    m("Tensor", "+", "a + b, a - b, a * b, a / b", "Element-wise arithmetic between tensors (broadcasting as PyTorch) or with a number.", "let t = tensor([1.0, 2.0]);\nprint((t + t) * 0.5 - 1 / tensor([2.0, 4.0]));"),
    f("set_seed", "set_seed(n)", "Seeds weight initialization, dropout and the default shuffles and splits.", "set_seed(42);"),
    f("device", "device()", "The device new models are placed on.", "print(device());"),
    f("input", "input(prompt)", "Asks the user for a line of text (in a notebook, through the frontend).", "let answer = input(\"How many epochs? \");"),
    f("print", "print(value)", "Prints a value.", "print(`accuracy: ${run.val_accuracy}`);"),
    f("debug", "debug(value)", "Prints a value on the error stream (stderr).", "debug(model.labels);"),
    f("display", "display(value)", "Shows a value richly: a table for models, datasets and runs in a notebook.", "display(model);"),
    f("table", "table(rows, [columns])", "A table from an array of maps, one row each; the columns are the given names in that order, else every key alphabetically. Aligned text when printed, an HTML table in a notebook.", "print(table([#{ method: \"full\", acc: 0.82 }, #{ method: \"LoRA\", acc: 0.80 }], [\"method\", \"acc\"]));"),
    f("clear_output", "clear_output()", "Clears the output of the current notebook cell.", "clear_output();"),
    f("help", "help(name)", "Shows the reference for a function or method.", "help(\"fit\");"),
    f("slider", "slider(#{ min, max, step, value, description, continuous_update })", "A slider: over integers when min, max, step and value are all integers, else over decimals (defaults 0 to 100, the value at min). In a notebook it is a Jupyter widget: `w.value` is what the slider shows now, and setting it moves the slider. Elsewhere it keeps its value and prints as text.", "let layers = slider(#{ min: 0, max: 6, value: 2, description: \"top layers\" });\nprint(layers.value);"),
    f("dropdown", "dropdown(options, #{ value, description })", "A choice among options (any values, shown as text); `w.value` is the option chosen.", "let method = dropdown([\"full\", \"lora\", \"head\"], #{ value: \"lora\" });\nprint(method.value);"),
    f("checkbox", "checkbox(#{ value, description })", "A box to tick; `w.value` is true or false.", "let augment = checkbox(#{ value: true, description: \"augment\" });\nprint(augment.value);"),
    f("text", "text(#{ value, description, placeholder })", "A line of text to type; `w.value` is the text, and `on_submit` runs when Enter is pressed.", "let name = text(#{ placeholder: \"run name\" });\nprint(name.value == \"\");"),
    f("button", "button(label, #{ style, icon, tooltip })", "A button; `on_click` runs a function each time it is pressed. style: primary, success, info, warning or danger.", "let start = button(\"Train\", #{ style: \"primary\" });\nprint(start);"),
    f("progress", "progress(#{ min, max, value, description, style })", "A progress bar; set `w.value` to move it.", "let bar = progress(#{ max: 10 });\nbar.value = 3;\nprint(bar.value);"),
    f("html", "html(text)", "HTML text as a widget (a live label: set `w.value` to change it).", "let status = html(\"<b>ready</b>\");\nstatus.value = \"<b>training</b>\";"),
    f("hbox", "hbox(widgets)", "Widgets side by side.", "let row = hbox([slider(#{ max: 6 }), button(\"Train\")]);"),
    f("vbox", "vbox(widgets)", "Widgets stacked.", "let panel = vbox([html(\"<b>LoRA</b>\"), slider(#{ min: 1, max: 64, value: 8, description: \"rank\" })]);"),
    f("output", "output()", "An output area as a widget: `o.show(value)` and `o.write(text)` add to it, `o.capture(fn)` puts what a function prints and shows in it, `o.clear()` empties it. Outside a notebook what it is given prints as usual.", "let o = output();\no.write(\"epoch 1 done\");\no.clear();"),
    f("interact", "interact(fn, #{ name: control, ... })", "As ipywidgets' interact: shows the controls (sliders, dropdowns, checkboxes, text boxes, in name order) above an output area, calls `fn(values)` with a map of their current values, and shows what it prints, plots and returns in the output area; each time the user changes a control (after the running cell, if any, ends), it runs again and replaces that output. Outside a notebook it runs once and prints.", "interact(|v| v.n * v.n, #{ n: slider(#{ min: 1, max: 10, value: 3 }) });"),
    m("Widget", "show", "o.show(value)", "Adds a value to an output area, shown as `display` shows it (a chart, a table, text).", "let o = output();\no.show(table([#{ layers: 2, acc: 0.81 }]));"),
    m("Widget", "write", "o.write(text)", "Adds a line of text to an output area.", "let o = output();\no.write(\"ready\");"),
    m("Widget", "clear", "o.clear()", "Empties an output area.", "let o = output();\no.write(\"old\");\no.clear();"),
    m("Widget", "capture", "o.capture(fn)", "Calls `fn()` and puts what it prints and shows in the output area (in a notebook); returns what `fn` returns.", "let o = output();\nlet x = o.capture(|| { print(\"inside\"); 42 });\nprint(x);"),
    m("Widget", "value", "w.value", "What the widget shows now (a slider's number, a dropdown's option, a box's text); setting it updates the frontend.", "let s = slider(#{ max: 10 });\ns.value = 4;\nprint(s.value);"),
    m("Widget", "description", "w.description", "The label beside the widget; settable.", "let s = slider(#{ max: 10 });\ns.description = \"epochs\";\nprint(s.description);"),
    m("Widget", "on_change", "w.on_change(fn)", "Calls `fn(value)` when the user changes the widget (after the cell that is running, if any, ends).", "let s = slider(#{ max: 10 });\ns.on_change(|v| print(`now ${v}`));"),
    m("Widget", "on_click", "w.on_click(fn)", "Calls `fn(button)` each time the button is pressed.", "let clicks = 0;\nlet b = button(\"Count\");\nb.on_click(|w| clicks += 1);"),
    m("Widget", "on_submit", "w.on_submit(fn)", "Calls `fn(text_box)` when Enter is pressed in a text box.", "let t = text(#{});\nt.on_submit(|w| print(w.value));"),
    m("Widget", "close", "w.close()", "Removes the widget from the frontend.", "let s = slider(#{});\ns.close();"),
];

/// The keys each function's option map accepts.
pub const OPTIONS: &[(&str, &[&str])] = &[
    ("slider", &["min", "max", "step", "value", "description", "continuous_update"]),
    ("dropdown", &["value", "description"]),
    ("checkbox", &["value", "description"]),
    ("text", &["value", "description", "placeholder"]),
    ("button", &["style", "icon", "tooltip"]),
    ("progress", &["min", "max", "value", "description", "style"]),
    ("load_model", &["task", "labels", "pooling", "device", "dropout", "size", "weights"]),
    ("generate", &["max_new_tokens", "temperature", "top_k", "top_p", "repetition_penalty", "seed", "stop", "stream", "use_cache", "precision"]),
    ("apply_chat_template", &["add_generation_prompt"]),
    ("tokenize (language model)", &["max_len", "train_on", "overflow"]),
    ("split (chat)", &["val", "seed"]),
    ("save (language model)", &["gguf_type"]),
    ("load_dataset", &["text", "pair", "label", "labels", "task", "separator", "split", "stream", "test", "size", "extensions", "recursive"]),
    ("dataset", &["text", "pair", "label", "labels", "task", "separator"]),
    ("clean", &["strip_html", "unicode", "lowercase", "min_chars", "max_chars", "dedupe"]),
    ("split", &["val", "test", "seed", "stratify"]),
    ("kfold", &["k", "seed", "stratify"]),
    ("tokenize", &["max_len"]),
    ("loader", &["batch", "shuffle", "seed", "drop_last", "bucket", "packing", "normalize", "augment", "model", "size"]),
    ("augment (images)", &["crop", "flip", "rotate", "resized_crop", "color_jitter"]),
    ("color_jitter", &["brightness", "contrast", "saturation", "hue"]),
    ("augment (text)", &["synonyms", "insert", "swap", "delete", "p"]),
    ("augment_text", &["synonyms", "insert", "swap", "delete", "seed"]),
    ("image_model", &["arch", "layers", "dropout", "input", "labels", "task", "device"]),
    (
        "fit",
        &[
            "optimizer", "momentum", "nesterov", "lr", "weight_decay", "schedule", "warmup", "epochs", "max_steps", "max_grad_norm", "early_stopping", "gradual_unfreezing",
            "freeze_epochs", "layer_decay", "lr_groups", "loss", "label_smoothing", "precision", "class_weights", "accumulate", "checkpointing", "checkpoint", "resume", "eval_every", "track_layers", "samples", "log", "log_dir", "controls",
        ],
    ),
    ("checkpoint", &["dir", "keep"]),
    ("samples", &["prompts", "max_new_tokens"]),
    ("lr_find", &["start", "end", "steps", "weight_decay"]),
    ("evaluate", &["precision"]),
    ("find_batch_size", &["precision"]),
    ("lr_groups", &["modules", "lr"]),
    ("add_lora", &["r", "alpha", "dropout", "targets", "rslora", "dora"]),
    ("add_adapters", &["size"]),
    ("early_stopping", &["metric", "patience", "min_delta", "restore_best"]),
    ("predict", &["max_len", "head", "top_k", "threshold", "precision"]),
    ("predict (images)", &["top_k"]),
    ("add_head", &["labels", "pooling", "task"]),
    ("plot", &["title", "width", "height", "names", "metric", "by", "smooth"]),
    ("plot_costs", &["title", "width", "height", "names"]),
    ("plot_lr", &["title", "width", "height"]),
    ("plot_layers", &["title", "width", "height"]),
    ("plot_freeze", &["title", "width", "height"]),
    ("plot_confusion", &["title", "width", "height"]),
    ("plot_scores", &["title", "width", "height"]),
    ("plot_balance", &["title", "width", "height"]),
    ("plot_lengths", &["title", "width", "height"]),
    ("plot_images", &["n", "title", "width", "height"]),
    ("plot_cam", &["class", "title", "width", "height"]),
    ("save (chart)", &["title", "width", "height"]),
];

/// The option keys of `function` (empty if it takes none).
pub fn options_of(function: &str) -> &'static [&'static str] {
    OPTIONS.iter().find(|(f, _)| *f == function).map(|(_, keys)| *keys).unwrap_or(&[])
}

/// The entries with this name (a function and methods may share one).
pub fn lookup(name: &str) -> Vec<&'static ApiEntry> {
    API.iter().filter(|e| e.name == name).collect()
}

/// The help text for a name: signature, doc and example of each entry.
pub fn help(name: &str) -> Option<String> {
    let entries = lookup(name);
    if entries.is_empty() {
        return None;
    }
    Some(entries.iter().map(|e| format!("{}\n\n{}\n\nExample:\n{}", e.signature, e.doc, indent(e.example))).collect::<Vec<_>>().join("\n\n"))
}

fn indent(code: &str) -> String {
    code.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

/// `fit(...)` for `fit(model, train, ...)`; `device()` and `run.steps` as they are.
fn short_signature(signature: &str) -> String {
    match signature.split_once('(') {
        Some((head, rest)) if !rest.starts_with(')') => format!("{head}(...)"),
        _ => signature.to_string(),
    }
}

/// The first sentence of a doc, for one-line listings.
pub(crate) fn first_sentence(doc: &str) -> &str {
    match doc.find(". ") {
        Some(i) => &doc[..=i],
        None => doc,
    }
}

/// Every entry, one line each (signature and the doc's first sentence),
/// grouped as functions, then methods by type: what `tunebook api` prints.
pub fn listing() -> String {
    let mut out = String::new();
    for (title, receiver) in groups() {
        out.push_str(&format!("{title}\n"));
        for e in API.iter().filter(|e| e.receiver == receiver) {
            out.push_str(&format!("  {:<32} {}\n", short_signature(e.signature), first_sentence(e.doc)));
        }
        out.push('\n');
    }
    out.push_str("`tunebook api NAME` shows one in full, with an example.\n");
    out
}

/// The reference as Markdown: what `tunebook api --markdown` prints and
/// `docs/api.md` holds.
pub fn markdown() -> String {
    let mut out = String::from("# Tunebook script API\n\nGenerated by `tunebook api --markdown > docs/api.md`; a test fails when this file is stale.\n\nThe examples assume these variables (the tests run every example after this prelude):\n\n```rhai\n");
    out.push_str(PRELUDE);
    out.push_str("\n```\n");
    for (title, receiver) in groups() {
        out.push_str(&format!("\n## {title}\n"));
        for e in API.iter().filter(|e| e.receiver == receiver) {
            out.push_str(&format!("\n### `{}`\n\n```\n{}\n```\n\n{}\n\n```rhai\n{}\n```\n", e.name, e.signature, e.doc, e.example));
        }
    }
    out.push_str("\n## Option maps\n\nEvery option map is checked: an unknown key, a wrong type or an out-of-range value is an error that names the key and the valid choices.\n\n| function | keys |\n|---|---|\n");
    for (func, keys) in OPTIONS {
        out.push_str(&format!("| `{func}` | {} |\n", keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")));
    }
    out
}

/// Section titles and the receiver each lists (`None`: functions).
fn groups() -> Vec<(String, Option<&'static str>)> {
    let mut receivers: Vec<&'static str> = Vec::new();
    for e in API {
        if let Some(r) = e.receiver {
            if !receivers.contains(&r) {
                receivers.push(r);
            }
        }
    }
    std::iter::once(("Functions".to_string(), None)).chain(receivers.into_iter().map(|r| (format!("{r} methods and properties"), Some(r)))).collect()
}
