//! Evaluation metrics, as scikit-learn computes them (with 0 where a ratio
//! has no denominator): for classes, a confusion matrix with accuracy and
//! precision, recall and F1 per class and macro-averaged; for multi-label
//! data, the same per label plus exact-match accuracy; for regression,
//! MSE, MAE and R².

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

impl ClassScores {
    /// Scores from true positives, rows predicted as the class, and rows of it.
    fn from_counts(tp: i64, predicted: i64, support: i64) -> Self {
        let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
        let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
        ClassScores { precision, recall, f1, support }
    }
}

/// The unweighted means of precision, recall and F1.
fn macro_of(per: &[ClassScores]) -> (f64, f64, f64) {
    let n = per.len().max(1) as f64;
    (per.iter().map(|s| s.precision).sum::<f64>() / n, per.iter().map(|s| s.recall).sum::<f64>() / n, per.iter().map(|s| s.f1).sum::<f64>() / n)
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
                let predicted: i64 = (0..n).map(|t| self.counts[t][c]).sum();
                ClassScores::from_counts(self.counts[c][c], predicted, self.counts[c].iter().sum())
            })
            .collect()
    }

    /// The unweighted mean of each class's precision, recall and F1.
    pub fn macro_scores(&self) -> (f64, f64, f64) {
        macro_of(&self.per_class())
    }
}

/// Per-label counts of multi-label predictions (a label is predicted when
/// its probability is at least 0.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiLabelCounts {
    /// Per label: (true positives, false positives, false negatives).
    pub counts: Vec<(i64, i64, i64)>,
    /// Rows whose every label was predicted right.
    pub exact: i64,
    /// Rows counted.
    pub rows: i64,
}

impl MultiLabelCounts {
    /// Empty counts for `labels` labels.
    pub fn new(labels: usize) -> Self {
        Self { counts: vec![(0, 0, 0); labels], exact: 0, rows: 0 }
    }

    /// Counts rows of 0/1 truths and 0/1 predictions, `labels` entries each.
    pub fn add(&mut self, truth: &[f32], predicted: &[f32]) {
        let n = self.counts.len().max(1);
        for (t_row, p_row) in truth.chunks(n).zip(predicted.chunks(n)) {
            let mut all_right = true;
            for (c, (&t, &p)) in self.counts.iter_mut().zip(t_row.iter().zip(p_row)) {
                let (t, p) = (t > 0.5, p > 0.5);
                match (t, p) {
                    (true, true) => c.0 += 1,
                    (false, true) => c.1 += 1,
                    (true, false) => c.2 += 1,
                    (false, false) => {}
                }
                all_right &= t == p;
            }
            self.exact += i64::from(all_right);
            self.rows += 1;
        }
    }

    /// The share of rows with every label right (scikit-learn's
    /// `accuracy_score` on multi-label data).
    pub fn exact_match(&self) -> f64 {
        ratio(self.exact, self.rows)
    }

    /// Precision, recall, F1 and support of each label.
    pub fn per_label(&self) -> Vec<ClassScores> {
        self.counts
            .iter()
            .map(|&(tp, fp, fn_)| ClassScores::from_counts(tp, tp + fp, tp + fn_))
            .collect()
    }

    /// The unweighted mean of each label's precision, recall and F1.
    pub fn macro_scores(&self) -> (f64, f64, f64) {
        macro_of(&self.per_label())
    }
}

/// Predictions and targets of a regression, kept to compute MSE, MAE and R².
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegressionScores {
    outputs: usize,
    predicted: Vec<f64>,
    truth: Vec<f64>,
}

impl RegressionScores {
    /// Empty scores for `outputs` numbers per row.
    pub fn new(outputs: usize) -> Self {
        Self { outputs: outputs.max(1), ..Default::default() }
    }

    /// Adds rows (`outputs` numbers each) of targets and predictions.
    pub fn add(&mut self, truth: &[f32], predicted: &[f32]) {
        self.truth.extend(truth.iter().map(|&x| f64::from(x)));
        self.predicted.extend(predicted.iter().map(|&x| f64::from(x)));
    }

    /// Numbers per row.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// The predictions and the targets added so far, row-major.
    pub fn values(&self) -> (&[f64], &[f64]) {
        (&self.predicted, &self.truth)
    }

    /// Scores over given predictions and targets (`outputs` per row).
    pub fn from_values(outputs: usize, predicted: Vec<f64>, truth: Vec<f64>) -> Self {
        Self { outputs: outputs.max(1), predicted, truth }
    }

    fn pairs(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.truth.iter().copied().zip(self.predicted.iter().copied())
    }

    /// Mean squared error over every output of every row.
    pub fn mse(&self) -> f64 {
        self.pairs().map(|(t, p)| (t - p).powi(2)).sum::<f64>() / self.truth.len().max(1) as f64
    }

    /// Mean absolute error over every output of every row.
    pub fn mae(&self) -> f64 {
        self.pairs().map(|(t, p)| (t - p).abs()).sum::<f64>() / self.truth.len().max(1) as f64
    }

    /// R² per output, averaged (scikit-learn's `r2_score`, uniform average:
    /// an output with constant targets scores 1 if predicted exactly, else 0).
    pub fn r2(&self) -> f64 {
        let k = self.outputs;
        let rows = self.truth.len() / k;
        if rows == 0 {
            return 0.0;
        }
        let per_output = (0..k).map(|o| {
            let col = |v: &[f64]| v.iter().skip(o).step_by(k).copied().collect::<Vec<f64>>();
            let (t, p) = (col(&self.truth), col(&self.predicted));
            let mean = t.iter().sum::<f64>() / rows as f64;
            let ss_res: f64 = t.iter().zip(&p).map(|(t, p)| (t - p).powi(2)).sum();
            let ss_tot: f64 = t.iter().map(|t| (t - mean).powi(2)).sum();
            match (ss_tot == 0.0, ss_res == 0.0) {
                (true, true) => 1.0,
                (true, false) => 0.0,
                _ => 1.0 - ss_res / ss_tot,
            }
        });
        per_output.sum::<f64>() / k as f64
    }
}

#[cfg(test)]
mod tests {
    use super::{Confusion, MultiLabelCounts, RegressionScores};

    #[test]
    fn multi_label_scores_match_scikit_learn() {
        // y = [[1,0,1],[0,1,0],[1,1,0],[0,0,1]], p = [[1,0,0],[0,1,0],[1,0,0],[1,0,1]]:
        // accuracy_score 0.25; f1_score(average=None) = [0.8, 0.6667, 0.6667].
        let mut m = MultiLabelCounts::new(3);
        m.add(&[1., 0., 1., 0., 1., 0., 1., 1., 0., 0., 0., 1.], &[1., 0., 0., 0., 1., 0., 1., 0., 0., 1., 0., 1.]);
        assert!((m.exact_match() - 0.25).abs() < 1e-12, "{}", m.exact_match());
        let f1: Vec<f64> = m.per_label().iter().map(|s| s.f1).collect();
        assert!((f1[0] - 0.8).abs() < 1e-12 && (f1[1] - 2.0 / 3.0).abs() < 1e-12 && (f1[2] - 2.0 / 3.0).abs() < 1e-12, "{f1:?}");
    }

    #[test]
    fn regression_scores_match_scikit_learn() {
        // r2_score([3, -0.5, 2, 7], [2.5, 0.0, 2, 8]) = 0.9486081370449679; MSE 0.375, MAE 0.5.
        let mut r = RegressionScores::new(1);
        r.add(&[3.0, -0.5], &[2.5, 0.0]);
        r.add(&[2.0, 7.0], &[2.0, 8.0]);
        assert!((r.r2() - 0.948_608_137_044_967_9).abs() < 1e-9, "{}", r.r2());
        assert!((r.mse() - 0.375).abs() < 1e-12 && (r.mae() - 0.5).abs() < 1e-12);
        // Two outputs, uniform average: r2_score([[0.5, 1], [-1, 1], [7, -6]], [[0, 2], [-1, 2], [8, -5]]) = 0.9368005266622779.
        let mut r = RegressionScores::new(2);
        r.add(&[0.5, 1.0, -1.0, 1.0, 7.0, -6.0], &[0.0, 2.0, -1.0, 2.0, 8.0, -5.0]);
        assert!((r.r2() - 0.936_800_526_662_277_9).abs() < 1e-9, "{}", r.r2());
    }

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
