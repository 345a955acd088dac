//! `metric`: a route's metric (priority) within inclusive ranges.

use std::ops::RangeInclusive;

use super::{InvalidFilter, Predicate};
use crate::v1::Filter;

pub fn build(filter: &Filter, out: &mut Vec<Predicate>) -> Result<(), InvalidFilter> {
    if filter.metric.is_empty() {
        return Ok(());
    }
    let ranges = filter
        .metric
        .iter()
        .map(|v| range(v))
        .collect::<Result<Vec<_>, _>>()?;
    out.push(Box::new(move |s| {
        s.object
            .route()
            .is_some_and(|r| ranges.iter().any(|range| range.contains(&r.metric)))
    }));
    Ok(())
}

/// "N", "N-M" or "N-".
fn range(v: &str) -> Result<RangeInclusive<u32>, InvalidFilter> {
    let bad = || {
        InvalidFilter::new(
            "metric",
            v,
            "expected N, a range N-M, or N- for N and above (0 to 4294967295)",
        )
    };
    let number = |s: &str| s.trim().parse::<u32>().map_err(|_| bad());
    let range = match v.split_once('-') {
        None => number(v).map(|n| n..=n)?,
        Some((low, "")) => number(low)?..=u32::MAX,
        Some((low, high)) => number(low)?..=number(high)?,
    };
    if range.is_empty() {
        return Err(InvalidFilter::new(
            "metric",
            v,
            "the range ends below its start",
        ));
    }
    Ok(range)
}

#[cfg(test)]
mod tests {
    use crate::filter::testing::*;

    #[test]
    fn single_values_ranges_and_open_ranges() {
        let mut r = route("10.0.0.0/8");
        for (metric, values, passes_) in [
            (100, &["100"][..], true),
            (100, &["101"][..], false),
            (150, &["100-200"][..], true),
            (200, &["100-200"][..], true),
            (201, &["100-200"][..], false),
            (u32::MAX, &["1024-"][..], true),
            (5, &["1024-", "0-10"][..], true),
        ] {
            r.metric = metric;
            assert_eq!(
                passes(|f| f.metric = strings(values), &added(&r)),
                passes_,
                "{metric} in {values:?}"
            );
        }
        assert!(!passes(
            |f| f.metric = strings(&["0-"]),
            &nexthop_added(&nexthop(1))
        ));
    }

    #[test]
    fn malformed_ranges_are_refused() {
        for v in ["", "x", "-5", "5-x", "200-100", "4294967296"] {
            assert_eq!(invalid(|f| f.metric = strings(&[v])).field, "metric", "{v}");
        }
    }
}
