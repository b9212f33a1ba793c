//! Fault injection and latency: decides per request whether to inject a fault (every n-th
//! matching request, or at random with a rate, up to a maximum per configuration), which
//! kind (the configured one, or one drawn uniformly from a list), and counts the faults
//! injected: since the configuration was set, over the server's lifetime, and per
//! operation and kind. The configuration can be swapped at run time.
//!
//! Everything sits behind one mutex, taken once per request: the cap must hold exactly
//! under concurrent requests, and a seeded schedule must draw its random numbers in the
//! order the requests are decided, which atomics alone would not give.

use super::{FaultConfig, FaultKind};
use cos_wire::CosOp;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

/// The operation name counted for requests that are not a known operation.
pub const UNKNOWN_OP: &str = "Unknown";

/// A snapshot of the fault counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Over the server's lifetime.
    pub injected: u64,
    /// Since the current configuration was set.
    pub injected_config: u64,
    /// Lifetime, by `CosOp::name()` (or [`UNKNOWN_OP`]).
    pub by_op: BTreeMap<&'static str, u64>,
    /// Lifetime, by `FaultKind::name()`.
    pub by_kind: BTreeMap<&'static str, u64>,
}

struct Inner {
    cfg: FaultConfig,
    /// Matching requests seen under `cfg` (the every-n-th counter).
    matching: u64,
    /// `Some` when `cfg.seed` is set: the source of every random choice under `cfg`.
    rng: Option<StdRng>,
    stats: FaultStats,
}

pub struct Faults {
    inner: Mutex<Inner>,
}

impl Faults {
    pub fn new(cfg: FaultConfig) -> Faults {
        let rng = cfg.seed.map(StdRng::seed_from_u64);
        Faults {
            inner: Mutex::new(Inner {
                cfg,
                matching: 0,
                rng,
                stats: FaultStats::default(),
            }),
        }
    }

    /// Replaces the configuration; its period, cap counter and random sequence start over.
    pub fn set(&self, cfg: FaultConfig) {
        let mut g = self.inner.lock();
        g.rng = cfg.seed.map(StdRng::seed_from_u64);
        g.cfg = cfg;
        g.matching = 0;
        g.stats.injected_config = 0;
    }

    pub fn get(&self) -> FaultConfig {
        self.inner.lock().cfg.clone()
    }

    /// Faults injected over the server's lifetime.
    pub fn injected(&self) -> u64 {
        self.inner.lock().stats.injected
    }

    /// Faults injected since the configuration was last set.
    pub fn injected_config(&self) -> u64 {
        self.inner.lock().stats.injected_config
    }

    pub fn stats(&self) -> FaultStats {
        self.inner.lock().stats.clone()
    }

    /// The fault to inject into a request for `op`, if any. `op` is `None` for requests
    /// that are not a known operation; they only match an empty op filter.
    pub fn decide(&self, op: Option<CosOp>) -> Option<FaultKind> {
        let mut guard = self.inner.lock();
        let g = &mut *guard;
        let cfg = &g.cfg;
        let kinds: &[FaultKind] = match (&cfg.kinds[..], &cfg.kind) {
            ([], None) => return None,
            ([], Some(k)) => std::slice::from_ref(k),
            (ks, _) => ks,
        };
        let matches = cfg.ops.is_empty()
            || op.is_some_and(|o| cfg.ops.iter().any(|n| n.eq_ignore_ascii_case(o.name())));
        if !matches {
            return None;
        }
        g.matching += 1;
        let hit = match cfg.every_nth {
            Some(every) if every > 0 => g.matching % every == 0,
            _ if cfg.rate > 0.0 => {
                let p = cfg.rate.clamp(0.0, 1.0);
                match &mut g.rng {
                    Some(r) => r.gen_bool(p),
                    None => rand::thread_rng().gen_bool(p),
                }
            }
            _ => false,
        };
        if !hit || cfg.max_faults.is_some_and(|m| g.stats.injected_config >= m) {
            return None;
        }
        let kind = if kinds.len() == 1 {
            kinds[0]
        } else {
            let i = match &mut g.rng {
                Some(r) => r.gen_range(0..kinds.len()),
                None => rand::thread_rng().gen_range(0..kinds.len()),
            };
            kinds[i]
        };
        let s = &mut g.stats;
        s.injected += 1;
        s.injected_config += 1;
        *s.by_op
            .entry(op.map(|o| o.name()).unwrap_or(UNKNOWN_OP))
            .or_default() += 1;
        *s.by_kind.entry(kind.name()).or_default() += 1;
        Some(kind)
    }

    pub fn latency_ms(&self) -> u64 {
        self.inner.lock().cfg.latency_ms
    }

    pub fn bandwidth(&self) -> Option<u64> {
        self.inner.lock().cfg.bandwidth_bytes_per_sec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nth_with_op_filter_and_cap() {
        let f = Faults::new(FaultConfig {
            kind: Some(FaultKind::SlowDown),
            every_nth: Some(2),
            ops: vec!["GetObject".into()],
            max_faults: Some(2),
            ..FaultConfig::default()
        });
        assert_eq!(f.decide(Some(CosOp::PutObject)), None);
        let hits: Vec<bool> = (0..8)
            .map(|_| f.decide(Some(CosOp::GetObject)).is_some())
            .collect();
        assert_eq!(hits, [false, true, false, true, false, false, false, false]);
        assert_eq!(f.injected(), 2);
    }

    #[test]
    fn rate_one_always_and_no_kind_never() {
        let f = Faults::new(FaultConfig {
            kind: Some(FaultKind::Reset),
            rate: 1.0,
            ..FaultConfig::default()
        });
        assert!((0..10).all(|_| f.decide(None).is_some()));
        let off = Faults::new(FaultConfig {
            rate: 1.0,
            ..FaultConfig::default()
        });
        assert!(off.decide(Some(CosOp::GetObject)).is_none());
    }

    #[test]
    fn cap_counts_per_configuration_and_totals_accumulate() {
        let capped = |kind| FaultConfig {
            kind: Some(kind),
            every_nth: Some(1),
            max_faults: Some(2),
            ..FaultConfig::default()
        };
        let f = Faults::new(capped(FaultKind::SlowDown));
        let n = (0..5)
            .filter(|_| f.decide(Some(CosOp::GetObject)).is_some())
            .count();
        assert_eq!(n, 2);
        // A new configuration with the same cap injects again: the cap is per config.
        f.set(capped(FaultKind::Reset));
        assert_eq!(f.injected_config(), 0);
        let got: Vec<_> = (0..5).filter_map(|_| f.decide(None)).collect();
        assert_eq!(got, [FaultKind::Reset, FaultKind::Reset]);
        let s = f.stats();
        assert_eq!((s.injected, s.injected_config), (4, 2));
        assert_eq!(s.by_op.get("GetObject"), Some(&2));
        assert_eq!(s.by_op.get(UNKNOWN_OP), Some(&2));
        assert_eq!(s.by_kind.get("slow_down"), Some(&2));
        assert_eq!(s.by_kind.get("reset"), Some(&2));
        assert_eq!(s.by_kind.len(), 2);
        f.set(FaultConfig::default());
        assert_eq!((f.injected(), f.injected_config()), (4, 0));
    }

    fn schedule(f: &Faults, n: usize) -> Vec<Option<FaultKind>> {
        (0..n).map(|_| f.decide(Some(CosOp::PutObject))).collect()
    }

    #[test]
    fn seeded_mixed_schedule_repeats_and_uses_every_kind() {
        let all = vec![
            FaultKind::SlowDown,
            FaultKind::InternalError,
            FaultKind::Reset,
            FaultKind::TruncateBody,
        ];
        let cfg = |seed| FaultConfig {
            kinds: all.clone(),
            rate: 0.5,
            seed: Some(seed),
            ..FaultConfig::default()
        };
        let f = Faults::new(cfg(7));
        let first = schedule(&f, 400);
        // `set` restarts the seeded sequence: the same request order, the same faults.
        f.set(cfg(7));
        assert_eq!(schedule(&f, 400), first);
        // An independent instance agrees too (nothing but the seed feeds the choices).
        assert_eq!(schedule(&Faults::new(cfg(7)), 400), first);
        assert_ne!(schedule(&Faults::new(cfg(8)), 400), first, "seed matters");
        let hits = first.iter().flatten().count();
        assert!((120..=280).contains(&hits), "rate 0.5 gave {hits}/400");
        for k in &all {
            assert!(first.contains(&Some(*k)), "{k:?} never drawn");
        }
    }

    #[test]
    fn kinds_without_kind_inject_and_take_precedence() {
        let f = Faults::new(FaultConfig {
            kind: Some(FaultKind::Reset),
            kinds: vec![FaultKind::InternalError],
            every_nth: Some(1),
            ..FaultConfig::default()
        });
        assert_eq!(f.decide(None), Some(FaultKind::InternalError));
        // Unseeded mixed faults still only draw from the list.
        f.set(FaultConfig {
            kinds: vec![FaultKind::SlowDown, FaultKind::TruncateBody],
            rate: 1.0,
            ..FaultConfig::default()
        });
        let got = schedule(&f, 50);
        assert!(got
            .iter()
            .all(|k| matches!(k, Some(FaultKind::SlowDown | FaultKind::TruncateBody))));
    }
}
