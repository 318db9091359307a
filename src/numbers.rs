//! Numbers as people read them: digit groups and percentages, for summaries,
//! progress lines and charts.

/// `part` as a percentage of `total`, with enough decimals that a small
/// share does not read as zero (`99.3%`, `0.33%`, `0.0034%`).
pub fn percent(part: i64, total: i64) -> String {
    let p = 100.0 * part as f64 / total.max(1) as f64;
    match p {
        p if p == 0.0 || p >= 10.0 => format!("{p:.1}%"),
        p if p >= 0.1 => format!("{p:.2}%"),
        p => format!("{:.1$}%", p, (1 - p.log10().floor() as i64).clamp(2, 8) as usize),
    }
}

/// `12345678` as `12,345,678`.
pub fn group_digits(n: i64) -> String {
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}


#[cfg(test)]
mod tests {
    #[test]
    fn small_shares_keep_their_significant_digits() {
        assert_eq!(super::percent(22_566_146, 22_713_986), "99.3%");
        assert_eq!(super::percent(74_498, 22_713_986), "0.33%");
        assert_eq!(super::percent(770, 22_713_986), "0.0034%");
        assert_eq!(super::percent(0, 10), "0.0%");
    }
}

