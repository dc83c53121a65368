//! The failure trace: every element fails as a Poisson process at `afr x stress` per year
//! and comes back after its repair time (exponential of mean `repair_hours`, or exactly
//! `repair_hours`); failures overlap freely. Each element draws from its own random stream,
//! seeded by the run's seed and the element's id, so the trace depends only on the
//! inventory, the seed and the stress (two placements are compared on one trace, and an
//! element added to the zone leaves every other element's failures where they were).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use topology::failure::HOURS_PER_YEAR;
use topology::{ElementId, Inventory};

/// How long a failed element stays failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairTimes {
    /// Exponentially distributed, of mean the element's `repair_hours`.
    Exponential,
    /// Exactly the element's `repair_hours`.
    Fixed,
}

impl RepairTimes {
    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            RepairTimes::Exponential => "exponential",
            RepairTimes::Fixed => "fixed",
        }
    }
}

/// What the trace depends on, besides the inventory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceParams {
    /// The seed of every element's stream.
    pub seed: u64,
    /// Every failure rate is `afr x stress` per year.
    pub stress: f64,
    /// How repair times are drawn.
    pub repair: RepairTimes,
}

/// One element failing or coming back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    /// Hours since the start.
    pub at_h: f64,
    /// The element.
    pub element: ElementId,
    /// It fails (else it comes back).
    pub fails: bool,
}

/// The next transition of one element, ordered for a min-heap by time, then element.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Next(Transition);

impl Eq for Next {}

impl Ord for Next {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: the earliest on top of the max-heap.
        other
            .0
            .at_h
            .total_cmp(&self.0.at_h)
            .then(other.0.element.0.cmp(&self.0.element.0))
    }
}

impl PartialOrd for Next {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The endless, ordered stream of every element's transitions.
#[derive(Debug)]
pub struct Trace {
    streams: Vec<ChaCha8Rng>,
    /// Failures per hour.
    rate: Vec<f64>,
    repair_hours: Vec<f64>,
    repair: RepairTimes,
    heap: BinaryHeap<Next>,
}

impl Trace {
    /// The trace of `inv`'s elements, every one up at hour 0.
    pub fn new(inv: &Inventory, params: &TraceParams) -> Trace {
        let mut trace = Trace {
            streams: Vec::with_capacity(inv.elements.len()),
            rate: Vec::with_capacity(inv.elements.len()),
            repair_hours: Vec::with_capacity(inv.elements.len()),
            repair: params.repair,
            heap: BinaryHeap::new(),
        };
        for (i, element) in inv.elements.iter().enumerate() {
            let mut stream = ChaCha8Rng::seed_from_u64(element_seed(params.seed, &element.id));
            let rate = element.afr * params.stress / HOURS_PER_YEAR;
            if rate > 0.0 {
                trace.heap.push(Next(Transition {
                    at_h: exponential(&mut stream, rate),
                    element: ElementId(i as u32),
                    fails: true,
                }));
            }
            trace.streams.push(stream);
            trace.rate.push(rate);
            trace.repair_hours.push(element.repair_hours);
        }
        trace
    }

    /// When the next transition happens, if any element ever fails.
    pub fn peek_h(&self) -> Option<f64> {
        self.heap.peek().map(|n| n.0.at_h)
    }
}

impl Iterator for Trace {
    type Item = Transition;

    fn next(&mut self) -> Option<Transition> {
        let Next(t) = self.heap.pop()?;
        let e = t.element.index();
        let stream = &mut self.streams[e];
        let after = if t.fails {
            match self.repair {
                RepairTimes::Exponential => exponential(stream, 1.0 / self.repair_hours[e]),
                RepairTimes::Fixed => self.repair_hours[e],
            }
        } else {
            exponential(stream, self.rate[e])
        };
        self.heap.push(Next(Transition {
            at_h: t.at_h + after,
            element: t.element,
            fails: !t.fails,
        }));
        Some(t)
    }
}

/// A draw of an exponential distribution of rate `rate` (mean `1 / rate`).
fn exponential(stream: &mut ChaCha8Rng, rate: f64) -> f64 {
    let u: f64 = stream.random();
    -(1.0 - u).ln() / rate
}

/// The seed of one element's stream: the run's seed mixed with a hash of the element's
/// id (FNV-1a, then SplitMix64's finaliser), the same on every platform.
fn element_seed(seed: u64, id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = seed ^ h;
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::tiny;

    #[test]
    fn each_element_alternates_and_the_stream_is_ordered() {
        let inv = tiny();
        let params = TraceParams {
            seed: 7,
            stress: 50.0,
            repair: RepairTimes::Exponential,
        };
        let mut failed = vec![false; inv.elements.len()];
        let mut last = 0.0;
        for t in Trace::new(&inv, &params).take(5_000) {
            assert!(t.at_h >= last, "ordered in time");
            last = t.at_h;
            assert_eq!(failed[t.element.index()], !t.fails, "fails only when up");
            failed[t.element.index()] = t.fails;
        }
    }

    #[test]
    fn rates_and_repair_means_are_the_elements() {
        // Over a long run, each kind fails about afr x stress per year and stays down
        // about repair_hours (exactly, with fixed repairs).
        let inv = tiny();
        for repair in [RepairTimes::Exponential, RepairTimes::Fixed] {
            let params = TraceParams {
                seed: 3,
                stress: 20.0,
                repair,
            };
            let years = 2_000.0;
            let mut failures = vec![0u32; inv.elements.len()];
            let mut down_h = vec![0.0f64; inv.elements.len()];
            let mut since = vec![0.0f64; inv.elements.len()];
            for t in Trace::new(&inv, &params).take_while(|t| t.at_h < years * HOURS_PER_YEAR) {
                let e = t.element.index();
                if t.fails {
                    failures[e] += 1;
                    since[e] = t.at_h;
                } else {
                    down_h[e] += t.at_h - since[e];
                    if repair == RepairTimes::Fixed {
                        let took = t.at_h - since[e];
                        assert!((took - inv.elements[e].repair_hours).abs() < 1e-6);
                    }
                }
            }
            // Pooled over all elements: expected failures (an element is up most of the
            // time, so the rate while up is close to the rate).
            let expected: f64 = inv.elements.iter().map(|e| e.afr * 20.0 * years).sum();
            let seen: f64 = failures.iter().map(|&n| f64::from(n)).sum();
            let uptime_share = 1.0
                - inv
                    .elements
                    .iter()
                    .map(|e| e.afr * 20.0 * e.repair_hours / HOURS_PER_YEAR)
                    .sum::<f64>()
                    / inv.elements.len() as f64;
            let expected = expected * uptime_share;
            assert!(
                (seen - expected).abs() < 4.0 * expected.sqrt() + 0.01 * expected,
                "{repair:?}: {seen} failures, expected about {expected}"
            );
            let mean_repair = down_h.iter().sum::<f64>() / seen;
            let expected_repair = inv
                .elements
                .iter()
                .zip(&failures)
                .map(|(e, &n)| e.repair_hours * f64::from(n))
                .sum::<f64>()
                / seen;
            assert!(
                (mean_repair - expected_repair).abs() < 0.05 * expected_repair,
                "{repair:?}: mean repair {mean_repair} h, expected {expected_repair} h"
            );
        }
    }

    #[test]
    fn the_trace_is_the_seeds_and_each_elements_own() {
        let inv = tiny();
        let params = TraceParams {
            seed: 11,
            stress: 30.0,
            repair: RepairTimes::Exponential,
        };
        let a: Vec<_> = Trace::new(&inv, &params).take(500).collect();
        let b: Vec<_> = Trace::new(&inv, &params).take(500).collect();
        assert_eq!(a, b);
        let other = TraceParams { seed: 12, ..params };
        let c: Vec<_> = Trace::new(&inv, &other).take(500).collect();
        assert_ne!(a, c);
        // One element's transitions do not depend on the others: the same element in a
        // zone with an element fewer (its afr 0) keeps its times.
        let mut fewer = inv.clone();
        fewer.elements[0].afr = 0.0;
        let first = ElementId(1);
        let times = |ts: &[Transition]| -> Vec<f64> {
            ts.iter()
                .filter(|t| t.element == first)
                .map(|t| t.at_h)
                .collect()
        };
        let d: Vec<_> = Trace::new(&fewer, &params)
            .take_while(|t| t.at_h <= a.last().unwrap().at_h)
            .collect();
        assert!(!times(&a).is_empty());
        assert_eq!(times(&a), times(&d));
    }
}
