//! A connection's life on an HTTP front.

/// Whether a connection is idle long enough to be closed (gracefully): no
/// request in flight, and none finished within `timeout_ms`. HTTP/2 has no
/// such timer of its own, and a client answering pings would otherwise
/// keep its slot for ever; for HTTP/1.1 it bounds keep-alive idleness.
/// A response still streaming after its head was sent is not in flight,
/// and the graceful close lets it finish.
pub fn idle_expired(in_flight: usize, now_ms: u64, last_done_ms: u64, timeout_ms: u64) -> bool {
    in_flight == 0 && now_ms.saturating_sub(last_done_ms) >= timeout_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_connection_without_work_for_the_timeout_is_idle() {
        assert!(!idle_expired(0, 9_999, 0, 10_000));
        assert!(idle_expired(0, 10_000, 0, 10_000));
        assert!(!idle_expired(1, 60_000, 0, 10_000), "a request in flight");
        assert!(!idle_expired(0, 15_000, 6_000, 10_000), "a request finished lately");
        // A clock read before the last request's end is not idleness.
        assert!(!idle_expired(0, 5_000, 6_000, 10_000));
    }
}
