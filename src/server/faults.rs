//! Fault injection and latency: decides per request whether to inject the configured
//! fault (every n-th matching request, or at random with a rate, up to a maximum), and
//! counts the faults injected. The configuration can be swapped at run time.

use super::{FaultConfig, FaultKind};
use crate::cos::CosOp;
use parking_lot::RwLock;
use rand::Rng;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Faults {
    cfg: RwLock<FaultConfig>,
    matching: AtomicU64,
    injected: AtomicU64,
}

impl Faults {
    pub fn new(cfg: FaultConfig) -> Faults {
        Faults {
            cfg: RwLock::new(cfg),
            matching: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        }
    }

    pub fn set(&self, cfg: FaultConfig) {
        *self.cfg.write() = cfg;
        self.matching.store(0, Ordering::SeqCst);
    }

    pub fn get(&self) -> FaultConfig {
        self.cfg.read().clone()
    }

    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    /// The fault to inject into a request for `op`, if any. `op` is `None` for requests
    /// that are not a known operation; they only match an empty op filter.
    pub fn decide(&self, op: Option<CosOp>) -> Option<FaultKind> {
        let cfg = self.cfg.read();
        let kind = cfg.kind?;
        let matches = cfg.ops.is_empty()
            || op.is_some_and(|o| cfg.ops.iter().any(|n| n.eq_ignore_ascii_case(o.name())));
        if !matches {
            return None;
        }
        let n = self.matching.fetch_add(1, Ordering::SeqCst) + 1;
        let hit = match cfg.every_nth {
            Some(every) if every > 0 => n % every == 0,
            _ => cfg.rate > 0.0 && rand::thread_rng().gen_bool(cfg.rate.clamp(0.0, 1.0)),
        };
        if !hit {
            return None;
        }
        // Count under the cap without a lock: undo when over it.
        let before = self.injected.fetch_add(1, Ordering::SeqCst);
        if cfg.max_faults.is_some_and(|m| before >= m) {
            self.injected.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(kind)
    }

    pub fn latency_ms(&self) -> u64 {
        self.cfg.read().latency_ms
    }

    pub fn bandwidth(&self) -> Option<u64> {
        self.cfg.read().bandwidth_bytes_per_sec
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
}
