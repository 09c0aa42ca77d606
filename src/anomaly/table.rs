//! Per-key model state with a bound: past `max_entries` the entries seen longest ago go first.

use std::hash::Hash;

use hashbrown::HashMap;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_entries: usize,
    /// After alerting about a key, a model stays quiet about it this long (packet time).
    pub cooldown_ns: u64,
}

struct Entry<V> {
    value: V,
    last_ns: u64,
    alerted_ns: Option<u64>,
}

pub struct Table<K, V> {
    map: HashMap<K, Entry<V>>,
    limits: Limits,
    evicted: u64,
}

impl<K: Hash + Eq + Clone, V> Table<K, V> {
    pub fn new(limits: Limits) -> Self {
        Table {
            map: HashMap::new(),
            limits,
            evicted: 0,
        }
    }

    /// The state of `key`, created with `init` when new; marks it seen at `now_ns`.
    pub fn get(&mut self, key: &K, now_ns: u64, init: impl FnOnce() -> V) -> &mut V {
        if !self.map.contains_key(key) && self.map.len() >= self.limits.max_entries {
            self.evict();
        }
        let entry = self.map.entry(key.clone()).or_insert_with(|| Entry {
            value: init(),
            last_ns: now_ns,
            alerted_ns: None,
        });
        entry.last_ns = entry.last_ns.max(now_ns);
        &mut entry.value
    }

    /// Whether the model may alert about `key` now; if so, the cooldown starts.
    pub fn may_alert(&mut self, key: &K, now_ns: u64) -> bool {
        let Some(entry) = self.map.get_mut(key) else {
            return false;
        };
        let quiet = entry
            .alerted_ns
            .is_none_or(|at| now_ns.saturating_sub(at) >= self.limits.cooldown_ns);
        if quiet {
            entry.alerted_ns = Some(now_ns);
        }
        quiet
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// New limits from a reload; a lower cap takes effect as new keys arrive.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Forgets the eighth of the entries seen longest ago (at least one): amortized O(1) per
    /// insert, rather than a scan on every one.
    fn evict(&mut self) {
        let mut ages: Vec<u64> = self.map.values().map(|e| e.last_ns).collect();
        let n = (ages.len() / 8).max(1);
        let cut = *ages.select_nth_unstable(n - 1).1;
        let before = self.map.len();
        let mut left = n;
        self.map.retain(|_, e| {
            if left > 0 && e.last_ns <= cut {
                left -= 1;
                false
            } else {
                true
            }
        });
        self.evicted += (before - self.map.len()) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_under_its_bound_dropping_the_quietest() {
        let mut t: Table<u32, u32> = Table::new(Limits {
            max_entries: 16,
            cooldown_ns: 0,
        });
        for k in 0..100u32 {
            *t.get(&k, u64::from(k), || 0) += 1;
            assert!(t.len() <= 16);
        }
        assert!(t.evicted() >= 84);
        // The most recent keys survive.
        assert_eq!(*t.get(&99, 100, || 7), 1);
    }

    #[test]
    fn cooldown_holds_repeated_alerts() {
        let mut t: Table<u32, ()> = Table::new(Limits {
            max_entries: 4,
            cooldown_ns: 10,
        });
        t.get(&1, 0, || ());
        assert!(t.may_alert(&1, 0));
        assert!(!t.may_alert(&1, 9));
        assert!(t.may_alert(&1, 10));
        assert!(!t.may_alert(&2, 10), "unknown keys never alert");
    }
}
