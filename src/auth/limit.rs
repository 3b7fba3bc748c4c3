//! Rate limits for the token endpoint: a fixed window per API key id and per
//! client address, so a stolen key id or a scanner cannot try secrets at
//! speed. In memory, per replica (a replica's share is enough to stop
//! guessing a 256-bit secret; the point is to keep the endpoint cheap).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before expired windows are swept.
const SWEEP_ABOVE: usize = 10_000;

/// At most `max` requests per `window` for each name.
pub struct RateLimiter {
    window: Duration,
    max: u32,
    counts: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            window,
            max,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request for `name`; `Err(retry_after)` once over the limit.
    pub fn check(&self, name: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() > SWEEP_ABOVE {
            counts.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let entry = counts.entry(name.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.max {
            return Err(self.window.saturating_sub(now.duration_since(entry.0)));
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_over_its_limit_waits_for_the_next_window() {
        let limiter = RateLimiter::new(2, Duration::from_millis(50));
        assert!(limiter.check("k").is_ok() && limiter.check("k").is_ok());
        let retry = limiter.check("k").unwrap_err();
        assert!(retry <= Duration::from_millis(50));
        assert!(limiter.check("other").is_ok(), "names are counted apart");
        std::thread::sleep(Duration::from_millis(60));
        assert!(limiter.check("k").is_ok());
    }
}
