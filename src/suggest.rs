//! Matching names: globs, and "did you mean" suggestions for names a user mistyped.

/// The `n` candidates closest to `target` by edit distance, prefix matches first.
pub fn closest(target: &str, candidates: &[String], n: usize) -> Vec<String> {
    let mut scored: Vec<(usize, &String)> = candidates
        .iter()
        .map(|c| {
            let d = edit_distance(target, c);
            let prefix_bonus = if c.starts_with(target) || target.starts_with(c.as_str()) { 0 } else { 1000 };
            (d + prefix_bonus, c)
        })
        .collect();
    scored.sort();
    scored.into_iter().take(n).map(|(_, c)| c.clone()).collect()
}

/// Levenshtein distance, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `*` and `?` glob matching (`*` matches any run of characters, dots included).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob_stars_match_anything_even_a_literal_star() {
        assert!(glob_match("6 *", "6 * 7"));
        assert!(glob_match("*fit*", "let run = fit(m, t)"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "abbc"));
        assert!(!glob_match("fit", "fit(m)"));
        assert!(glob_match("encoder.layer.*.attention", "encoder.layer.11.attention"));
        assert!(!glob_match("encoder.layer.*.attention", "encoder.layer.11.attention.self"));
    }
}
