"""Mean-pooled sequence classifiers, as Tunebook trains them.

transformers' own `...ForSequenceClassification` classes read the first
token (BERT through its pooler); a head trained on the mean of the last
hidden states over real tokens needs this file. Tunebook writes it beside
every mean-pooled model it saves, and `config.json` points at it, so that

    AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)

gives the predictions Tunebook gave. Without `trust_remote_code=True`,
transformers refuses the folder instead of running a head that was never
trained.
"""

import torch
from torch import nn
from transformers import (
    BertConfig,
    BertModel,
    BertPreTrainedModel,
    DistilBertConfig,
    DistilBertModel,
    DistilBertPreTrainedModel,
    RobertaConfig,
    RobertaModel,
    RobertaPreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput


class TunebookMeanPooledBertConfig(BertConfig):
    """A BERT configuration whose classifier reads the mean of the tokens."""

    model_type = "tunebook_mean_pooled_bert"


class TunebookMeanPooledRobertaConfig(RobertaConfig):
    """A RoBERTa configuration whose classifier reads the mean of the tokens."""

    model_type = "tunebook_mean_pooled_roberta"


class TunebookMeanPooledDistilBertConfig(DistilBertConfig):
    """A DistilBERT configuration whose classifier reads the mean of the tokens."""

    model_type = "tunebook_mean_pooled_distilbert"


def mean_pool(hidden, attention_mask):
    """The mean of `hidden` over the positions where `attention_mask` is 1."""
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def head_loss(config, logits, labels):
    """The loss transformers' classifiers use for `config.problem_type`."""
    problem = config.problem_type
    if problem is None:
        if config.num_labels == 1:
            problem = "regression"
        elif labels.dtype in (torch.long, torch.int):
            problem = "single_label_classification"
        else:
            problem = "multi_label_classification"
    if problem == "regression":
        if config.num_labels == 1:
            return nn.functional.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
        return nn.functional.mse_loss(logits, labels.to(logits.dtype))
    if problem == "single_label_classification":
        return nn.functional.cross_entropy(logits.view(-1, config.num_labels), labels.view(-1))
    return nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def add_head(model, config, hidden_size, dropout):
    """Gives `model` the head Tunebook trained: dropout and a linear classifier."""
    model.num_labels = config.num_labels
    model.dropout = nn.Dropout(config.hidden_dropout_prob if dropout is None else dropout)
    model.classifier = nn.Linear(hidden_size, config.num_labels)


def classify(model, encoder, input_ids, attention_mask, labels, return_dict, **inputs):
    """Runs `encoder`, pools by mean and classifies; the loss when `labels` are given."""
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    hidden = encoder(input_ids=input_ids, attention_mask=attention_mask, **inputs)[0]
    logits = model.classifier(model.dropout(mean_pool(hidden, attention_mask)))
    loss = None if labels is None else head_loss(model.config, logits, labels)
    if return_dict is False:
        return (logits,) if loss is None else (loss, logits)
    return SequenceClassifierOutput(loss=loss, logits=logits)


class TunebookMeanPooledBertForSequenceClassification(BertPreTrainedModel):
    """BERT with a classifier on the mean of its last hidden states."""

    config_class = TunebookMeanPooledBertConfig
    # Tunebook keeps BERT's pretrained pooler in the file; mean pooling does not use it.
    _keys_to_ignore_on_load_unexpected = [r"bert\.pooler\."]

    def __init__(self, config):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        add_head(self, config, config.hidden_size, config.classifier_dropout)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, return_dict=None, **_):
        return classify(self, self.bert, input_ids, attention_mask, labels, return_dict, token_type_ids=token_type_ids)


class TunebookMeanPooledRobertaForSequenceClassification(RobertaPreTrainedModel):
    """RoBERTa with a classifier on the mean of its last hidden states."""

    config_class = TunebookMeanPooledRobertaConfig

    def __init__(self, config):
        super().__init__(config)
        self.roberta = RobertaModel(config, add_pooling_layer=False)
        add_head(self, config, config.hidden_size, config.classifier_dropout)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, return_dict=None, **_):
        return classify(self, self.roberta, input_ids, attention_mask, labels, return_dict, token_type_ids=token_type_ids)


class TunebookMeanPooledDistilBertForSequenceClassification(DistilBertPreTrainedModel):
    """DistilBERT with a classifier on the mean of its last hidden states."""

    config_class = TunebookMeanPooledDistilBertConfig

    def __init__(self, config):
        super().__init__(config)
        self.distilbert = DistilBertModel(config)
        add_head(self, config, config.dim, config.seq_classif_dropout)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, labels=None, return_dict=None, **_):
        return classify(self, self.distilbert, input_ids, attention_mask, labels, return_dict)
