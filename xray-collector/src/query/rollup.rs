//! `stats` from rollups: what both backends keep, at ship time, per UTC
//! day and per hour, step name and *duration bucket* — how many finished
//! steps, how many of them not `ok`, and the longest — so that `stats`
//! over millions of steps reads thousands of rows (BENCHMARKS.md, issue
//! 12). A `--since` window is read from the day rollups for its whole
//! days, the hour rollups for the whole hours before them, and the steps
//! themselves (bucketed the same way) for the less than an hour before
//! that ([`window`]).
//!
//! # Precision
//!
//! A bucket holds the durations that agree in their first three decimal
//! digits ([`bucket`]): below 1 000 µs every duration is its own bucket,
//! above it a bucket is at most 1 % wide. A percentile is the discrete
//! one (`percentile_disc`: the value at rank ⌈f·n⌉), reported as the
//! longest duration seen in the bucket holding that rank: a duration that
//! was recorded, in the same bucket as the exact percentile, never below
//! it and less than 1 % above it. Counts, errors and tokens are exact;
//! `max` is exact unless the longest step was deleted (pruned) while
//! others of its bucket were kept, and then still in its bucket.

use super::StepStats;

/// Microseconds in a day.
pub const DAY_US: i64 = 86_400_000_000;
/// Microseconds in an hour.
pub const HOUR_US: i64 = 3_600_000_000;

/// The bucket of a duration (µs): the duration itself below 1 000, else
/// `(digits − 3) · 1 000 + its first three digits` — increasing with the
/// duration. The backends compute the same in SQL (a parity test checks).
pub fn bucket(duration_us: i64) -> i64 {
    if duration_us < 1_000 {
        return duration_us;
    }
    let digits = duration_us.ilog10() as i64 + 1;
    let lead = duration_us / 10i64.pow((digits - 3) as u32);
    (digits - 3) * 1_000 + lead
}

/// The start (µs since the epoch) of the `width`-long span (a day, an
/// hour: both whole in UTC) holding `at_us`.
pub fn start_of(at_us: i64, width: i64) -> i64 {
    at_us - at_us.rem_euclid(width)
}

/// The first start of a `width`-long span at or after `at_us`.
pub fn first_whole(at_us: i64, width: i64) -> i64 {
    let start = start_of(at_us, width);
    if start == at_us {
        start
    } else {
        start.saturating_add(width)
    }
}

/// One bucket of one step name, summed over the days (and raw steps) a
/// window covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// [`bucket`] of the durations in it.
    pub bucket: i64,
    /// Finished steps.
    pub count: i64,
    /// Of those, not `ok`.
    pub errors: i64,
    /// The longest duration seen (µs).
    pub max_us: i64,
}

/// The stats of one step name from its buckets (any order; empty ones
/// ignored); `None` when no step is left.
pub fn step_stats(name: String, buckets: &mut [Bucket]) -> Option<StepStats> {
    buckets.sort_unstable_by_key(|b| b.bucket);
    let live = || buckets.iter().filter(|b| b.count > 0);
    let count: i64 = live().map(|b| b.count).sum();
    if count == 0 {
        return None;
    }
    let at_rank = |rank: i64| {
        let mut seen = 0;
        live()
            .find(|b| {
                seen += b.count;
                seen >= rank
            })
            .map_or(0, |b| b.max_us)
    };
    Some(StepStats {
        name,
        count,
        errors: live().map(|b| b.errors).sum(),
        p50_us: at_rank((count + 1) / 2),
        p95_us: at_rank((95 * count + 99) / 100),
        max_us: live().map(|b| b.max_us).max().unwrap_or(0),
    })
}

/// Every step name's stats from `(name, bucket)` rows (any order, a name's
/// bucket possibly in several rows: the rollups' and the raw steps'),
/// ordered by name bytewise (as both backends order text).
pub fn stats_by_name(rows: impl IntoIterator<Item = (String, Bucket)>) -> Vec<StepStats> {
    let mut names: std::collections::BTreeMap<String, Vec<Bucket>> = Default::default();
    for (name, b) in rows {
        names.entry(name).or_default().push(b);
    }
    names
        .into_iter()
        .filter_map(|(name, mut buckets)| step_stats(name, &mut buckets))
        .collect()
}

/// Where a `--since` window's parts begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The raw steps are read from here (`None`: no raw part)…
    pub since_us: Option<i64>,
    /// …up to here, the hour rollups from here…
    pub whole_hours_us: Option<i64>,
    /// …up to here, and the day rollups from here (`None`: all of them).
    pub whole_days_us: Option<i64>,
}

/// The window a `--since` makes; without `since`, everything comes from
/// the day rollups.
pub fn window(since_us: Option<i64>) -> Window {
    Window {
        since_us,
        whole_hours_us: since_us.map(|s| first_whole(s, HOUR_US)),
        whole_days_us: since_us.map(|s| first_whole(s, DAY_US)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    #[test]
    fn buckets_keep_three_digits_and_increase() {
        for (d, b) in [
            (-5, -5),
            (0, 0),
            (999, 999),
            (1_000, 1_100),
            (1_009, 1_100),
            (1_010, 1_101),
            (9_999, 1_999),
            (10_000, 2_100),
            (161_234, 3_161),
            (i64::MAX, 16_922),
        ] {
            assert_eq!(bucket(d), b, "{d}");
        }
        let mut last = bucket(-1);
        for d in (0..3_000_000).step_by(7) {
            let b = bucket(d);
            assert!(b >= last, "{d}");
            last = b;
        }
    }

    #[test]
    fn spans_are_whole_utc_days_and_hours_also_before_1970() {
        assert_eq!(start_of(DAY_US + 5, DAY_US), DAY_US);
        assert_eq!(start_of(-1, DAY_US), -DAY_US);
        assert_eq!(start_of(-1, HOUR_US), -HOUR_US);
        assert_eq!(first_whole(DAY_US, DAY_US), DAY_US);
        assert_eq!(first_whole(DAY_US + 1, DAY_US), 2 * DAY_US);
        assert_eq!(first_whole(DAY_US + 1, HOUR_US), DAY_US + HOUR_US);
        assert_eq!(first_whole(-1, DAY_US), 0);
        assert_eq!(first_whole(i64::MAX, DAY_US), i64::MAX);
        let w = window(Some(DAY_US + HOUR_US + 7));
        assert_eq!(
            (w.whole_hours_us, w.whole_days_us),
            (Some(DAY_US + 2 * HOUR_US), Some(2 * DAY_US))
        );
        assert_eq!(window(None).whole_days_us, None);
    }

    /// What `percentile_disc` gives: the value at rank ⌈f·n⌉.
    fn exact(sorted: &[i64], rank: i64) -> i64 {
        sorted[(rank - 1) as usize]
    }

    proptest! {
        /// The rollups' stats against the raw steps': counts and errors
        /// equal, each percentile and the max a recorded duration in the
        /// bucket of the exact one, never below it.
        #[test]
        fn stats_from_buckets_match_the_raw_percentiles(
            steps in prop::collection::vec((0i64..5_000_000, any::<bool>()), 1..400),
            shift in 0usize..3,
        ) {
            let mut buckets: Vec<Bucket> = Vec::new();
            for &(d, failed) in &steps {
                match buckets.iter_mut().find(|b| b.bucket == bucket(d)) {
                    Some(b) => {
                        b.count += 1;
                        b.errors += i64::from(failed);
                        b.max_us = b.max_us.max(d);
                    }
                    None => buckets.push(Bucket { bucket: bucket(d), count: 1, errors: i64::from(failed), max_us: d }),
                }
            }
            // Emptied buckets (what deletes leave) change nothing.
            buckets.push(Bucket { bucket: 17, count: 0, errors: 0, max_us: 17 });
            let len = buckets.len();
            buckets.rotate_left(shift.min(len));
            let got = step_stats("s".into(), &mut buckets).unwrap();
            let mut sorted: Vec<i64> = steps.iter().map(|s| s.0).collect();
            sorted.sort_unstable();
            let n = sorted.len() as i64;
            prop_assert_eq!(got.count, n);
            prop_assert_eq!(got.errors, steps.iter().filter(|s| s.1).count() as i64);
            for (reported, raw) in [
                (got.p50_us, exact(&sorted, (n + 1) / 2)),
                (got.p95_us, exact(&sorted, (95 * n + 99) / 100)),
                (got.max_us, *sorted.last().unwrap()),
            ] {
                prop_assert_eq!(bucket(reported), bucket(raw));
                prop_assert!(reported >= raw);
                prop_assert!(sorted.binary_search(&reported).is_ok());
            }
            prop_assert_eq!(got.max_us, *sorted.last().unwrap());
        }
    }
}
