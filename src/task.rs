//! What a head predicts: one class, several labels, or numbers. Data,
//! model and training all follow it (the targets' type, the saved
//! `problem_type`, the loss and the metrics).

use anyhow::{bail, Result};

/// Whether a head's label names are Hugging Face's defaults for a count of
/// outputs (`LABEL_0`, `LABEL_1`, ...) rather than names given by the user.
pub fn are_placeholder_labels(labels: &[String]) -> bool {
    labels.iter().enumerate().all(|(i, l)| *l == format!("LABEL_{i}"))
}

/// The prediction task of a head, as Hugging Face's `problem_type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// One class per row (softmax, cross-entropy).
    #[default]
    Classify,
    /// Any number of labels per row (sigmoid per label, binary cross-entropy).
    MultiLabel,
    /// One or more numbers per row (mean squared error by default).
    Regression,
    /// One class per word (named entities, parts of speech): softmax and
    /// cross-entropy at each word's first token.
    Tokens,
    /// The next token at every position (a causal language model).
    NextToken,
}

impl Task {
    /// The names scripts use, in `Task` order.
    pub const NAMES: &'static [&'static str] = &["classify", "multi_label", "regression", "token_classify", "causal_lm"];

    /// Parses a script name or Hugging Face's `problem_type`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "classify" | "single_label_classification" => Ok(Self::Classify),
            "multi_label" | "multi_label_classification" => Ok(Self::MultiLabel),
            "regression" => Ok(Self::Regression),
            "token_classify" | "token_classification" => Ok(Self::Tokens),
            "causal_lm" => Ok(Self::NextToken),
            _ => bail!("unknown task '{s}'; valid: {}", Self::NAMES.join(", ")),
        }
    }

    /// The name scripts use.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Hugging Face's `problem_type` for it (token classification has
    /// none: its class, `...ForTokenClassification`, says it).
    pub fn problem_type(self) -> Option<&'static str> {
        match self {
            Self::Classify => Some("single_label_classification"),
            Self::MultiLabel => Some("multi_label_classification"),
            Self::Regression => Some("regression"),
            Self::Tokens | Self::NextToken => None,
        }
    }

    /// The fewest outputs a head for this task can have.
    pub fn min_outputs(self) -> usize {
        match self {
            Self::Classify | Self::Tokens => 2,
            Self::MultiLabel | Self::Regression | Self::NextToken => 1,
        }
    }

    /// The metrics an evaluation reports for this task, besides the loss.
    pub fn metric_names(self) -> &'static [&'static str] {
        match self {
            Self::Classify | Self::MultiLabel | Self::Tokens => &["accuracy", "f1"],
            Self::Regression => &["mse", "mae", "r2"],
            Self::NextToken => &["perplexity"],
        }
    }

    /// The metric that charts and one-line summaries show beside the loss.
    pub fn headline_metric(self) -> &'static str {
        match self {
            Self::Classify | Self::MultiLabel | Self::Tokens => "accuracy",
            Self::Regression => "r2",
            Self::NextToken => "perplexity",
        }
    }

    /// The metrics that epoch tables show beside the loss: for classifiers
    /// F1 too, as accuracy flatters a model on imbalanced classes.
    pub fn table_metrics(self) -> Vec<&'static str> {
        match self {
            Self::Classify | Self::MultiLabel | Self::Tokens => vec!["accuracy", "f1"],
            Self::Regression => vec!["r2"],
            Self::NextToken => vec!["perplexity"],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Task;

    #[test]
    fn names_round_trip_and_hugging_face_names_parse() {
        for t in [Task::Classify, Task::MultiLabel, Task::Regression, Task::Tokens] {
            assert_eq!(Task::parse(t.name()).unwrap(), t);
            if let Some(p) = t.problem_type() {
                assert_eq!(Task::parse(p).unwrap(), t);
            }
        }
        assert!(Task::parse("classification").unwrap_err().to_string().contains("classify, multi_label, regression, token_classify"));
    }
}
