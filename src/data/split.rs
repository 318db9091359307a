//! Seeded splits of a dataset's rows: train/validation/test by share or
//! count, stratified by class on request, and k-fold.

use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::Targets;

/// How much of the data a part takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Share {
    /// A share of all rows, between 0 and 1.
    Fraction(f64),
    /// A number of rows.
    Rows(usize),
}

impl Share {
    /// The rows this share is of `n`.
    fn of(self, n: usize) -> f64 {
        match self {
            Share::Fraction(f) => f * n as f64,
            Share::Rows(r) => r as f64,
        }
    }
}

/// A train/validation(/test) split.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitSpec {
    /// The validation part.
    pub val: Share,
    /// The test part, if any.
    pub test: Option<Share>,
    /// Seed of the shuffle.
    pub seed: u64,
    /// Keep each class's share the same in every part.
    pub stratify: bool,
}

/// Row indices of each part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitIndices {
    /// Training rows.
    pub train: Vec<usize>,
    /// Validation rows.
    pub val: Vec<usize>,
    /// Test rows (empty without a test part).
    pub test: Vec<usize>,
}

fn shuffled(mut rows: Vec<usize>, seed: u64) -> Vec<usize> {
    rows.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    rows
}

/// The rows of each class, each class's rows shuffled; one group of all
/// rows when not stratifying.
fn groups(targets: &Targets, seed: u64, stratify: bool) -> Result<Vec<Vec<usize>>> {
    let n = targets.len();
    if !stratify {
        return Ok(vec![shuffled((0..n).collect(), seed)]);
    }
    let Targets::Classes(ids) = targets else {
        bail!("stratifying needs one class per row; this data is for {}", targets.task().name());
    };
    let classes = ids.iter().copied().max().map_or(0, |m| m as usize + 1);
    let mut by_class = vec![Vec::new(); classes];
    for (i, &c) in ids.iter().enumerate() {
        by_class[c as usize].push(i);
    }
    Ok(by_class.into_iter().filter(|g| !g.is_empty()).enumerate().map(|(k, g)| shuffled(g, seed.wrapping_add(k as u64))).collect())
}

/// Splits `total` rows over groups of the given sizes in proportion,
/// largest remainders first, so that the parts add up exactly.
fn allocate(total: usize, sizes: &[usize]) -> Vec<usize> {
    let n: usize = sizes.iter().sum();
    let quotas: Vec<f64> = sizes.iter().map(|&s| total as f64 * s as f64 / n.max(1) as f64).collect();
    let mut counts: Vec<usize> = quotas.iter().map(|q| q.floor() as usize).collect();
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|&a, &b| (quotas[b] - quotas[b].floor()).total_cmp(&(quotas[a] - quotas[a].floor())).then(a.cmp(&b)));
    let mut left = total.saturating_sub(counts.iter().sum());
    for i in order.into_iter().cycle().take(sizes.len() * 2) {
        if left == 0 {
            break;
        }
        if counts[i] < sizes[i] {
            counts[i] += 1;
            left -= 1;
        }
    }
    counts
}

/// Splits the rows of `targets` as `spec` says.
pub fn split_indices(targets: &Targets, spec: &SplitSpec) -> Result<SplitIndices> {
    let n = targets.len();
    for (name, share) in std::iter::once(("val", Some(spec.val))).chain(std::iter::once(("test", spec.test))) {
        match share {
            Some(Share::Fraction(f)) if !(f > 0.0 && f < 1.0) => bail!("the {name} share must be between 0 and 1 (exclusive), or a number of rows; got {f}"),
            Some(Share::Rows(0)) => bail!("the {name} part needs at least 1 row"),
            _ => {}
        }
    }
    let n_val = spec.val.of(n).round() as usize;
    let n_test = spec.test.map_or(0, |t| t.of(n).round() as usize);
    if n_val == 0 || n_val + n_test >= n || (spec.test.is_some() && n_test == 0) {
        bail!("splitting {n} rows into {n_val} validation and {n_test} test rows leaves a part empty; use larger shares or more rows");
    }
    let groups = groups(targets, spec.seed, spec.stratify)?;
    let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
    let (val_counts, test_counts) = (allocate(n_val, &sizes), allocate(n_test, &sizes));
    let mut out = SplitIndices { train: Vec::new(), val: Vec::new(), test: Vec::new() };
    for ((g, v), t) in groups.iter().zip(val_counts).zip(test_counts) {
        let t = t.min(g.len() - v.min(g.len()));
        out.val.extend(&g[..v]);
        out.test.extend(&g[v..v + t]);
        out.train.extend(&g[v + t..]);
    }
    if spec.stratify {
        // Classes were split one after another; mix them again.
        out.train = shuffled(out.train, spec.seed ^ 1);
        out.val = shuffled(out.val, spec.seed ^ 2);
        out.test = shuffled(out.test, spec.seed ^ 3);
    }
    Ok(out)
}

/// `k` folds: in fold i, the i-th k-th of the rows validates and the rest
/// trains. Stratified folds deal each class's rows out in turn.
pub fn kfold_indices(targets: &Targets, k: usize, seed: u64, stratify: bool) -> Result<Vec<(Vec<usize>, Vec<usize>)>> {
    let n = targets.len();
    if k < 2 || k > n {
        bail!("k-fold needs k between 2 and the number of rows ({n}); got {k}");
    }
    let mut folds = vec![Vec::new(); k];
    let mut next = 0;
    for g in groups(targets, seed, stratify)? {
        for i in g {
            folds[next % k].push(i);
            next += 1;
        }
    }
    Ok((0..k)
        .map(|f| {
            let train: Vec<usize> = (0..k).filter(|&o| o != f).flat_map(|o| folds[o].iter().copied()).collect();
            (train, folds[f].clone())
        })
        .collect())
}

/// The parts of a split, each built by `subset` from its row indices and
/// its name (`train`, `val`, `test`).
pub fn split_with<T>(targets: &Targets, spec: &SplitSpec, subset: impl Fn(&[usize], &str) -> T) -> Result<(T, T, Option<T>)> {
    let parts = split_indices(targets, spec)?;
    let test = spec.test.map(|_| subset(&parts.test, "test"));
    Ok((subset(&parts.train, "train"), subset(&parts.val, "val"), test))
}

/// The k folds, each part built by `subset` (named `foldN/train`, `foldN/val`).
pub fn kfold_with<T>(targets: &Targets, k: usize, seed: u64, stratify: bool, subset: impl Fn(&[usize], &str) -> T) -> Result<Vec<(T, T)>> {
    Ok(kfold_indices(targets, k, seed, stratify)?
        .into_iter()
        .enumerate()
        .map(|(i, (train, val))| (subset(&train, &format!("fold{}/train", i + 1)), subset(&val, &format!("fold{}/val", i + 1))))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(counts: &[usize]) -> Targets {
        Targets::Classes(counts.iter().enumerate().flat_map(|(c, &n)| std::iter::repeat_n(c as i64, n)).collect())
    }

    fn count(targets: &Targets, rows: &[usize], class: i64) -> usize {
        rows.iter().filter(|&&i| targets.class(i) == Some(class)).count()
    }

    #[test]
    fn a_stratified_split_keeps_each_class_share_and_exact_sizes() {
        let t = classes(&[90, 10]);
        let s = split_indices(&t, &SplitSpec { val: Share::Fraction(0.2), test: Some(Share::Rows(10)), seed: 1, stratify: true }).unwrap();
        assert_eq!((s.train.len(), s.val.len(), s.test.len()), (70, 20, 10));
        assert_eq!((count(&t, &s.val, 1), count(&t, &s.test, 1), count(&t, &s.train, 1)), (2, 1, 7));
        let mut all: Vec<usize> = s.train.iter().chain(&s.val).chain(&s.test).copied().collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>(), "every row in exactly one part");
        assert_eq!(s, split_indices(&t, &SplitSpec { val: Share::Fraction(0.2), test: Some(Share::Rows(10)), seed: 1, stratify: true }).unwrap());
    }

    #[test]
    fn k_folds_cover_every_row_once_and_stratify() {
        let t = classes(&[40, 10]);
        let folds = kfold_indices(&t, 5, 3, true).unwrap();
        let mut seen: Vec<usize> = folds.iter().flat_map(|(_, v)| v.iter().copied()).collect();
        seen.sort();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        for (train, val) in &folds {
            assert_eq!((train.len(), val.len(), count(&t, val, 1)), (40, 10, 2));
        }
        assert!(kfold_indices(&t, 1, 3, false).unwrap_err().to_string().contains("between 2 and the number of rows (50)"));
    }

    #[test]
    fn stratifying_numbers_is_refused() {
        let t = Targets::Values(vec![vec![1.0]; 10]);
        let e = split_indices(&t, &SplitSpec { val: Share::Fraction(0.2), test: None, seed: 1, stratify: true }).unwrap_err();
        assert_eq!(e.to_string(), "stratifying needs one class per row; this data is for regression");
    }
}
