//! Classification metrics from a confusion matrix: accuracy, precision,
//! recall and F1 per class and macro-averaged (as scikit-learn computes
//! them, with 0 where a ratio has no denominator).

/// Counts of (true class, predicted class).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confusion {
    /// `counts[true][predicted]`.
    pub counts: Vec<Vec<i64>>,
}

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassScores {
    /// Of the rows predicted as this class, the share that is.
    pub precision: f64,
    /// Of the rows of this class, the share predicted as it.
    pub recall: f64,
    /// The harmonic mean of precision and recall.
    pub f1: f64,
    /// Rows of this class.
    pub support: i64,
}

fn ratio(a: i64, b: i64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

impl Confusion {
    /// An empty matrix for `classes` classes.
    pub fn new(classes: usize) -> Self {
        Self { counts: vec![vec![0; classes]; classes] }
    }

    /// Counts one batch of true labels and predictions.
    pub fn add(&mut self, truth: &[i64], predicted: &[i64]) {
        for (&t, &p) in truth.iter().zip(predicted) {
            if let (Ok(t), Ok(p)) = (usize::try_from(t), usize::try_from(p)) {
                if t < self.counts.len() && p < self.counts.len() {
                    self.counts[t][p] += 1;
                }
            }
        }
    }

    /// Rows counted.
    pub fn total(&self) -> i64 {
        self.counts.iter().flatten().sum()
    }

    /// The share of rows predicted right.
    pub fn accuracy(&self) -> f64 {
        ratio((0..self.counts.len()).map(|i| self.counts[i][i]).sum(), self.total())
    }

    /// Scores of each class.
    pub fn per_class(&self) -> Vec<ClassScores> {
        let n = self.counts.len();
        (0..n)
            .map(|c| {
                let tp = self.counts[c][c];
                let predicted: i64 = (0..n).map(|t| self.counts[t][c]).sum();
                let support: i64 = self.counts[c].iter().sum();
                let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
                let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
                ClassScores { precision, recall, f1, support }
            })
            .collect()
    }

    /// The unweighted mean of each class's precision, recall and F1.
    pub fn macro_scores(&self) -> (f64, f64, f64) {
        let per = self.per_class();
        let n = per.len().max(1) as f64;
        (per.iter().map(|s| s.precision).sum::<f64>() / n, per.iter().map(|s| s.recall).sum::<f64>() / n, per.iter().map(|s| s.f1).sum::<f64>() / n)
    }
}

#[cfg(test)]
mod tests {
    use super::Confusion;

    #[test]
    fn scores_match_scikit_learn() {
        // sklearn.metrics.precision_recall_fscore_support(y, p, zero_division=0) on:
        let truth = [0, 0, 0, 1, 1, 2, 2, 2, 2, 1];
        let predicted = [0, 1, 0, 1, 1, 2, 0, 2, 1, 2];
        let mut c = Confusion::new(3);
        c.add(&truth, &predicted);
        assert_eq!(c.counts, vec![vec![2, 1, 0], vec![0, 2, 1], vec![1, 1, 2]]);
        assert!((c.accuracy() - 0.6).abs() < 1e-12);
        let per = c.per_class();
        // class 0: p = 2/3, r = 2/3; class 1: p = 2/4, r = 2/3; class 2: p = 2/3, r = 2/4.
        assert!((per[0].precision - 2.0 / 3.0).abs() < 1e-12 && (per[0].recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((per[1].precision - 0.5).abs() < 1e-12 && (per[1].f1 - 4.0 / 7.0).abs() < 1e-12);
        assert_eq!(per[2].support, 4);
        let (p, r, f1) = c.macro_scores();
        assert!((p - (2.0 / 3.0 + 0.5 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        assert!((r - (2.0 / 3.0 + 2.0 / 3.0 + 0.5) / 3.0).abs() < 1e-12);
        assert!((f1 - (2.0 / 3.0 + 4.0 / 7.0 + 4.0 / 7.0) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn a_class_never_predicted_scores_zero_not_nan() {
        let mut c = Confusion::new(2);
        c.add(&[0, 0, 1], &[0, 0, 0]);
        let per = c.per_class();
        assert_eq!((per[1].precision, per[1].recall, per[1].f1), (0.0, 0.0, 0.0));
    }
}
