//! How numbers and names read for people, one rule each, shared by the
//! summaries, the console and the report: rates as percentages, and the
//! natural order of group values ("L2" before "L10").

/// A rate as a percentage with the digits it needs: two significant digits
/// below 10% ("0.00012%", "0.025%", "1.5%"), one decimal above ("40%",
/// "12.3%"); "–" for NaN (a rate of nothing).
pub fn percent(rate: f64) -> String {
    if rate.is_nan() {
        return "–".into();
    }
    let p = rate * 100.0;
    if p == 0.0 {
        return "0%".into();
    }
    let digits = if p.abs() >= 10.0 {
        1
    } else {
        // Two significant digits below 10%.
        (1 - p.abs().log10().floor() as i32).clamp(1, 8) as usize
    };
    let s = format!("{p:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}%")
}

/// Paths as a user gave them, comma-separated, for messages.
pub(crate) fn path_list(paths: &[std::path::PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Compares strings with their digit runs as numbers: "L2" < "L10".
pub(crate) fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(cb.iter()) {
        let order = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if order.is_ne() {
            return order;
        }
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_keep_their_significant_digits() {
        assert_eq!(percent(0.4), "40%");
        assert_eq!(percent(0.123), "12.3%");
        assert_eq!(percent(0.0123), "1.2%");
        assert_eq!(percent(1e-5), "0.001%");
        assert_eq!(percent(0.00025), "0.025%");
        // FMR 1e-6 and its interval are not "0.000%".
        assert_eq!(percent(1e-6), "0.0001%");
        assert_eq!(percent(3.7e-6), "0.00037%");
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(f64::NAN), "–");
    }

    #[test]
    fn natural_order_compares_numbers_as_numbers() {
        let mut v = vec!["L10", "L2", "L1", "C10", "C4", "E01", "E2"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["C4", "C10", "E01", "E2", "L1", "L2", "L10"]);
    }
}
