//! What each row of a dataset is labelled with, for every task.

use tch::{Device, Kind, Tensor};

use crate::task::Task;

/// The labels of a dataset's rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// A class id per row (single-label classification).
    Classes(Vec<i64>),
    /// A 0/1 entry per label per row (multi-label classification).
    MultiLabel(Vec<Vec<f32>>),
    /// One or more numbers per row (regression).
    Values(Vec<Vec<f32>>),
    /// A class id per word of the row (token classification).
    Tokens(Vec<Vec<i64>>),
    /// No labels, for this many rows: data to predict on, not to train.
    Unlabelled(usize),
    /// Next-token labels for this many rows (language-model data; the
    /// labels themselves are per token, in the tokenized dataset).
    NextToken(usize),
}

impl Default for Targets {
    fn default() -> Self {
        Self::Classes(Vec::new())
    }
}

impl Targets {
    /// Whether the rows have labels (what training and evaluation need).
    pub fn is_labelled(&self) -> bool {
        !matches!(self, Self::Unlabelled(_))
    }

    /// The task these targets are for (unlabelled rows count as
    /// classification's, which any head can predict).
    pub fn task(&self) -> Task {
        match self {
            Self::Classes(_) | Self::Unlabelled(_) => Task::Classify,
            Self::MultiLabel(_) => Task::MultiLabel,
            Self::Values(_) => Task::Regression,
            Self::Tokens(_) => Task::Tokens,
            Self::NextToken(_) => Task::NextToken,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Self::Classes(v) => v.len(),
            Self::MultiLabel(v) | Self::Values(v) => v.len(),
            Self::Tokens(v) => v.len(),
            Self::Unlabelled(n) | Self::NextToken(n) => *n,
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An empty set of targets of the same task.
    pub fn empty_like(&self) -> Self {
        self.subset(&[])
    }

    /// The rows at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> Self {
        match self {
            Self::Classes(v) => Self::Classes(idx.iter().map(|&i| v[i]).collect()),
            Self::MultiLabel(v) => Self::MultiLabel(idx.iter().map(|&i| v[i].clone()).collect()),
            Self::Values(v) => Self::Values(idx.iter().map(|&i| v[i].clone()).collect()),
            Self::Tokens(v) => Self::Tokens(idx.iter().map(|&i| v[i].clone()).collect()),
            Self::Unlabelled(_) => Self::Unlabelled(idx.len()),
            Self::NextToken(_) => Self::NextToken(idx.len()),
        }
    }

    /// Appends row `i` of `other` (of the same task).
    pub fn push_from(&mut self, other: &Self, i: usize) {
        match (self, other) {
            (Self::Classes(a), Self::Classes(b)) => a.push(b[i]),
            (Self::MultiLabel(a), Self::MultiLabel(b)) | (Self::Values(a), Self::Values(b)) => a.push(b[i].clone()),
            (Self::Tokens(a), Self::Tokens(b)) => a.push(b[i].clone()),
            (Self::Unlabelled(n), Self::Unlabelled(_)) | (Self::NextToken(n), Self::NextToken(_)) => *n += 1,
            _ => unreachable!("targets of one dataset share a task"),
        }
    }

    /// The class id of row `i`, for single-label data.
    pub fn class(&self, i: usize) -> Option<i64> {
        match self {
            Self::Classes(v) => Some(v[i]),
            _ => None,
        }
    }

    /// The targets of `rows` as a tensor: int64 `[n]` class ids, float
    /// `[n, outputs]`, or int64 `[n, words]` tags padded with -100 (the
    /// loader aligns word tags to tokens itself).
    pub fn batch(&self, rows: &[usize], device: Device) -> Tensor {
        match self {
            Self::Classes(v) => Tensor::from_slice(&rows.iter().map(|&i| v[i]).collect::<Vec<_>>()).to_kind(Kind::Int64).to_device(device),
            Self::MultiLabel(v) | Self::Values(v) => {
                let width = v.first().map_or(0, Vec::len) as i64;
                let flat: Vec<f32> = rows.iter().flat_map(|&i| v[i].iter().copied()).collect();
                Tensor::from_slice(&flat).view([rows.len() as i64, width]).to_device(device)
            }
            Self::Tokens(v) => {
                let width = rows.iter().map(|&i| v[i].len()).max().unwrap_or(0);
                let mut flat = vec![-100i64; rows.len() * width];
                for (r, &i) in rows.iter().enumerate() {
                    flat[r * width..r * width + v[i].len()].copy_from_slice(&v[i]);
                }
                Tensor::from_slice(&flat).view([rows.len() as i64, width as i64]).to_device(device)
            }
            // Never a loss target: training and evaluation refuse unlabelled data.
            Self::Unlabelled(_) => Tensor::zeros([rows.len() as i64], (Kind::Int64, device)),
            // The tokenized dataset collates next-token labels itself.
            Self::NextToken(_) => Tensor::full([rows.len() as i64, 1], -100, (Kind::Int64, device)),
        }
    }

    /// Rows per class (or per label), named by `names` in id order; empty
    /// for regression, whose outputs are not counted.
    pub fn named_counts(&self, names: &[String]) -> Vec<(String, usize)> {
        if self.task() == crate::task::Task::Regression {
            return Vec::new();
        }
        names.iter().cloned().zip(self.label_counts(names.len())).collect()
    }

    /// Rows per label: per class for single-label data, rows carrying each
    /// label for multi-label data, words per tag for token data, none for
    /// regression.
    pub fn label_counts(&self, labels: usize) -> Vec<usize> {
        let mut counts = vec![0usize; labels];
        match self {
            Self::Classes(v) => v.iter().for_each(|&l| counts[l as usize] += 1),
            Self::MultiLabel(v) => {
                for row in v {
                    for (c, &x) in counts.iter_mut().zip(row) {
                        *c += usize::from(x > 0.5);
                    }
                }
            }
            Self::Tokens(v) => v.iter().flatten().for_each(|&l| counts[l as usize] += 1),
            Self::Values(_) | Self::Unlabelled(_) | Self::NextToken(_) => {}
        }
        counts
    }

    /// Row `i` in words: the class, the labels joined by `|`, or the numbers.
    pub fn describe_row(&self, i: usize, names: &[String]) -> String {
        match self {
            Self::Classes(v) => names[v[i] as usize].clone(),
            Self::MultiLabel(v) => names.iter().zip(&v[i]).filter(|(_, &x)| x > 0.5).map(|(n, _)| n.as_str()).collect::<Vec<_>>().join("|"),
            Self::Values(v) => v[i].iter().map(|x| format!("{x}")).collect::<Vec<_>>().join(", "),
            Self::Tokens(v) => v[i].iter().map(|&t| names[t as usize].as_str()).collect::<Vec<_>>().join(" "),
            Self::Unlabelled(_) | Self::NextToken(_) => "-".to_string(),
        }
    }
}
