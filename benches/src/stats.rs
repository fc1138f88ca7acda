//! Small statistics helpers for the runners.

/// The median of `samples` (the mean of the middle two for an even count); 0 for none.
pub fn median(samples: &mut [f64]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    let mid = samples.len() / 2;
    if samples.len() % 2 == 1 {
        samples[mid]
    } else {
        (samples[mid - 1] + samples[mid]) / 2.0
    }
}

/// `(max / mean, standard deviation / mean)` of per-node loads.
pub fn balance(loads: &[u64]) -> (f64, f64) {
    if loads.is_empty() {
        return (0.0, 0.0);
    }
    let n = loads.len() as f64;
    let mean = loads.iter().sum::<u64>() as f64 / n;
    let var = loads
        .iter()
        .map(|&l| (l as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let max = loads.iter().copied().max().unwrap_or(0) as f64;
    (max / mean, var.sqrt() / mean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_balance() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(balance(&[10, 10]), (1.0, 0.0));
        let (max, std) = balance(&[5, 15]);
        assert_eq!((max, std), (1.5, 0.5));
    }
}
