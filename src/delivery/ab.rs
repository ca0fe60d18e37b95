//! A/B tests: per-variant results and a two-proportion z-test, so a winner is declared only
//! when the difference is unlikely to be chance — and, when the template asks for it, rolled
//! out to everyone after the configured sample.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Opened,
    Clicked,
    Converted,
}

/// One variant's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Arm {
    pub variant: String,
    pub sent: u64,
    pub delivered: u64,
    pub opened: u64,
    pub clicked: u64,
    pub converted: u64,
}

impl Arm {
    pub fn successes(&self, m: Metric) -> u64 {
        match m {
            Metric::Opened => self.opened,
            Metric::Clicked => self.clicked,
            Metric::Converted => self.converted,
        }
    }

    pub fn rate(&self, m: Metric) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.successes(m) as f64 / self.sent as f64
        }
    }
}

/// The outcome of comparing the best variant with the runner-up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub metric: Metric,
    pub leader: Option<String>,
    /// Two-sided p-value of the difference between leader and runner-up.
    pub p_value: Option<f64>,
    pub significant: bool,
    /// Set when the leader has won: significant at `alpha` with every arm at `min_sample` sends.
    pub winner: Option<String>,
}

/// Two-sided p-value of a two-proportion z-test (pooled), None when it cannot be computed.
pub fn p_value(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<f64> {
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (x1, n1, x2, n2) = (x1 as f64, n1 as f64, x2 as f64, n2 as f64);
    let pooled = (x1 + x2) / (n1 + n2);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se == 0.0 || !se.is_finite() {
        return None;
    }
    let z = ((x1 / n1) - (x2 / n2)).abs() / se;
    Some((2.0 * (1.0 - normal_cdf(z))).clamp(0.0, 1.0))
}

/// Φ(z) through erf (Abramowitz & Stegun 7.1.26, error < 1.5e-7: plenty for p < 0.05).
fn normal_cdf(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    let erf = if x < 0.0 { -erf } else { erf };
    0.5 * (1.0 + erf)
}

/// Judges the arms on `metric`.
pub fn judge(arms: &[Arm], metric: Metric, min_sample: u64, alpha: f64) -> Verdict {
    let mut sorted: Vec<&Arm> = arms.iter().collect();
    sorted.sort_by(|a, b| {
        b.rate(metric)
            .partial_cmp(&a.rate(metric))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.variant.cmp(&b.variant))
    });
    let (leader, runner) = match sorted.as_slice() {
        [a, b, ..] => (*a, *b),
        _ => {
            return Verdict {
                metric,
                leader: sorted.first().map(|a| a.variant.clone()),
                p_value: None,
                significant: false,
                winner: None,
            }
        }
    };
    let p = p_value(
        leader.successes(metric),
        leader.sent,
        runner.successes(metric),
        runner.sent,
    );
    let significant = p.is_some_and(|p| p < alpha) && leader.rate(metric) > runner.rate(metric);
    let sampled = arms.iter().all(|a| a.sent >= min_sample);
    Verdict {
        metric,
        leader: Some(leader.variant.clone()),
        p_value: p,
        significant,
        winner: (significant && sampled).then(|| leader.variant.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(v: &str, sent: u64, clicked: u64) -> Arm {
        Arm {
            variant: v.into(),
            sent,
            clicked,
            ..Arm::default()
        }
    }

    #[test]
    fn p_values_match_the_textbook() {
        // 200/1000 vs 150/1000: z ≈ 2.93, p ≈ 0.0034.
        let p = p_value(200, 1000, 150, 1000).unwrap();
        assert!((p - 0.0034).abs() < 0.0005, "{p}");
        // Equal rates: p = 1.
        assert!((p_value(10, 100, 10, 100).unwrap() - 1.0).abs() < 1e-6);
        assert_eq!(p_value(0, 0, 1, 10), None);
        assert_eq!(p_value(0, 10, 0, 10), None);
    }

    #[test]
    fn a_winner_needs_significance_and_the_sample() {
        let arms = [arm("a", 1000, 150), arm("b", 1000, 200)];
        let v = judge(&arms, Metric::Clicked, 500, 0.05);
        assert_eq!(v.leader.as_deref(), Some("b"));
        assert!(v.significant);
        assert_eq!(v.winner.as_deref(), Some("b"));
        assert_eq!(
            judge(&arms, Metric::Clicked, 2000, 0.05).winner,
            None,
            "sample not reached"
        );
        let close = [arm("a", 100, 15), arm("b", 100, 17)];
        let v = judge(&close, Metric::Clicked, 50, 0.05);
        assert!(!v.significant && v.winner.is_none());
    }
}
