//! Brute-force protection for logins: failures per username in a sliding window, a growing
//! delay once over the threshold, in bounded memory; and a bound on concurrent logins.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tunables of the failure tracker.
#[derive(Debug, Clone)]
pub struct LoginLimits {
    /// Failures inside `window` before delays start.
    pub threshold: usize,
    /// The sliding window.
    pub window: Duration,
    /// The first delay once over the threshold; it doubles with every further failure.
    pub base_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// Usernames tracked at most (memory bound).
    pub max_tracked: usize,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            threshold: 5,
            window: Duration::from_secs(300),
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_tracked: 10_000,
        }
    }
}

/// Failed logins per username.
#[derive(Debug)]
pub struct FailureTracker {
    limits: LoginLimits,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl FailureTracker {
    /// An empty tracker.
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            limits,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The delay to impose before checking a login for `username` now.
    pub fn delay(&self, username: &str) -> Duration {
        let now = Instant::now();
        let Ok(mut map) = self.failures.lock() else {
            return self.limits.max_delay;
        };
        let Some(times) = map.get_mut(username) else {
            return Duration::ZERO;
        };
        self.expire(times, now);
        let over = times.len().saturating_sub(self.limits.threshold);
        if times.len() < self.limits.threshold {
            return Duration::ZERO;
        }
        let factor = 1u32 << over.min(16);
        self.limits
            .base_delay
            .saturating_mul(factor)
            .min(self.limits.max_delay)
    }

    /// Records a failure; returns the failures now inside the window.
    pub fn fail(&self, username: &str) -> usize {
        let now = Instant::now();
        let Ok(mut map) = self.failures.lock() else {
            return usize::MAX;
        };
        if !map.contains_key(username) && map.len() >= self.limits.max_tracked {
            self.make_room(&mut map, now);
        }
        let times = map.entry(username.to_owned()).or_default();
        self.expire(times, now);
        times.push_back(now);
        // Only the window's count matters past the threshold; keep the queue bounded too.
        while times.len() > self.limits.threshold * 4 + 16 {
            times.pop_front();
        }
        times.len()
    }

    /// Forgets `username`'s failures (after a successful login).
    pub fn succeed(&self, username: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(username);
        }
    }

    /// How many usernames are tracked.
    pub fn tracked(&self) -> usize {
        self.failures.lock().map(|m| m.len()).unwrap_or_default()
    }

    fn expire(&self, times: &mut VecDeque<Instant>, now: Instant) {
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.limits.window)
        {
            times.pop_front();
        }
    }

    /// Drops expired entries; if none expired, the one whose last failure is oldest.
    fn make_room(&self, map: &mut HashMap<String, VecDeque<Instant>>, now: Instant) {
        map.retain(|_, times| {
            times
                .back()
                .is_some_and(|t| now.duration_since(*t) <= self.limits.window)
        });
        if map.len() >= self.limits.max_tracked
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, times)| times.back().copied())
                .map(|(name, _)| name.clone())
        {
            map.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_capped() {
        let t = FailureTracker::new(LoginLimits {
            threshold: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            ..LoginLimits::default()
        });
        for _ in 0..2 {
            t.fail("alice");
        }
        assert_eq!(t.delay("alice"), Duration::ZERO);
        t.fail("alice");
        assert_eq!(t.delay("alice"), Duration::from_millis(100));
        t.fail("alice");
        assert_eq!(t.delay("alice"), Duration::from_millis(200));
        t.fail("alice");
        assert_eq!(t.delay("alice"), Duration::from_millis(350));
        assert_eq!(t.delay("bob"), Duration::ZERO);
        t.succeed("alice");
        assert_eq!(t.delay("alice"), Duration::ZERO);
    }

    #[test]
    fn memory_is_bounded() {
        let t = FailureTracker::new(LoginLimits {
            max_tracked: 100,
            ..LoginLimits::default()
        });
        for i in 0..10_000 {
            t.fail(&format!("user{i}"));
        }
        assert!(t.tracked() <= 100, "{}", t.tracked());
    }
}
