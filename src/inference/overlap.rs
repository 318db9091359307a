//! ROUGE-L (Lin, 2004): the longest common subsequence of words between a
//! generated text and its reference, as an F-measure. Tokenized as Google's
//! `rouge_score` does by default: lower-cased, every character other than
//! a-z and 0-9 a separator, no stemming.

/// The words ROUGE compares.
fn words(text: &str) -> Vec<String> {
    text.to_lowercase().split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit())).filter(|w| !w.is_empty()).map(str::to_string).collect()
}

/// Length of the longest common subsequence.
fn lcs(a: &[String], b: &[String]) -> usize {
    let mut row = vec![0usize; b.len() + 1];
    for x in a {
        let mut diagonal = 0;
        for (j, y) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if x == y { diagonal + 1 } else { row[j + 1].max(row[j]) };
            diagonal = above;
        }
    }
    row[b.len()]
}

/// ROUGE-L precision, recall and F-measure of `prediction` against `reference`.
pub fn rouge_l(prediction: &str, reference: &str) -> (f64, f64, f64) {
    let (p, r) = (words(prediction), words(reference));
    if p.is_empty() || r.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let common = lcs(&p, &r) as f64;
    let (precision, recall) = (common / p.len() as f64, common / r.len() as f64);
    let f = if common == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
    (precision, recall, f)
}

#[cfg(test)]
mod tests {
    use super::rouge_l;

    #[test]
    fn matches_rouge_score_on_its_examples() {
        // rouge_score: scorer.score(target="The quick brown fox", prediction="The quick brown dog jumps") gives P 0.6, R 0.75.
        let (p, r, f) = rouge_l("The quick brown dog jumps", "The quick brown fox");
        assert!((p - 0.6).abs() < 1e-12 && (r - 0.75).abs() < 1e-12 && (f - 2.0 * 0.6 * 0.75 / 1.35).abs() < 1e-12);
        assert_eq!(rouge_l("", "a b").2, 0.0);
        assert_eq!(rouge_l("Bank, of England!", "bank of england").2, 1.0);
        // Subsequence, not substring: "a c" is common to "a b c" and "a c d".
        assert!((rouge_l("a b c", "a c d").2 - 2.0 / 3.0).abs() < 1e-12);
    }
}
