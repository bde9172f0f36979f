//! Record a visit: what a redirect saw, with the IP anonymised by policy, handed
//! to the visit sink without waiting and without copying the headers.

use std::net::IpAddr;
use std::sync::Arc;

use offndat_domain::visit::anonymize_ip;
use uuid::Uuid;

use crate::ports::{Clock, PendingVisit, VisitSink};

/// What a redirect knows about its visitor, borrowed from the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Visitor<'a> {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<&'a [u8]>,
    pub referrer: Option<&'a [u8]>,
}

/// The record-visit use case.
#[derive(Clone)]
pub struct RecordVisit {
    sink: Arc<dyn VisitSink>,
    clock: Arc<dyn Clock>,
    anonymize_ips: bool,
}

impl RecordVisit {
    pub fn new(sink: Arc<dyn VisitSink>, clock: Arc<dyn Clock>, anonymize_ips: bool) -> Self {
        Self { sink, clock, anonymize_ips }
    }

    /// Records a visit of `link_id`; never waits.
    pub fn execute(&self, link_id: Uuid, visitor: Visitor<'_>) {
        let ip = visitor.ip.map(|ip| if self.anonymize_ips { anonymize_ip(ip) } else { ip });
        self.sink.record(PendingVisit {
            link_id,
            visited_at: self.clock.now(),
            ip,
            user_agent: visitor.user_agent,
            referrer: visitor.referrer,
        });
    }

    /// Counts a request for an unknown phrase; never waits.
    pub fn execute_orphan(&self) {
        self.sink.record_orphan(self.clock.now());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::{DateTime, Utc};
    use offndat_domain::NewVisit;
    use offndat_domain::visit::{MAX_REFERRER_CHARS, MAX_USER_AGENT_CHARS};

    use super::*;

    #[derive(Default)]
    struct Collect(Mutex<Vec<NewVisit>>);
    impl VisitSink for Collect {
        fn record(&self, visit: PendingVisit<'_>) {
            self.0.lock().expect("lock").push(visit.into_stored());
        }
        fn record_orphan(&self, _: DateTime<Utc>) {}
    }
    struct Epoch;
    impl crate::ports::Clock for Epoch {
        fn now(&self) -> DateTime<Utc> {
            DateTime::UNIX_EPOCH
        }
    }

    fn record(anonymize: bool, visitor: Visitor<'_>) -> NewVisit {
        let sink = Arc::new(Collect::default());
        RecordVisit::new(sink.clone(), Arc::new(Epoch), anonymize).execute(Uuid::nil(), visitor);
        sink.0.lock().expect("lock").pop().expect("recorded")
    }

    #[test]
    fn anonymises_when_told() {
        let visit = record(
            true,
            Visitor { ip: "203.0.113.77".parse().ok(), user_agent: Some(b"Googlebot/2.1"), referrer: Some(b" ") },
        );
        assert_eq!(visit.ip_address.as_deref(), Some("203.0.113.0"));
        assert_eq!(visit.user_agent.as_deref(), Some("Googlebot/2.1"));
        assert_eq!(visit.referrer, None);
        assert_eq!(visit.visited_at, DateTime::UNIX_EPOCH);
    }

    #[test]
    fn keeps_whole_ips_when_told_and_bounds_text() {
        let long = "x".repeat(5000);
        let visit = record(
            false,
            Visitor {
                ip: "203.0.113.77".parse().ok(),
                user_agent: Some(long.as_bytes()),
                referrer: Some(long.as_bytes()),
            },
        );
        assert_eq!(visit.ip_address.as_deref(), Some("203.0.113.77"));
        assert_eq!(visit.user_agent.map(|s| s.len()), Some(MAX_USER_AGENT_CHARS));
        assert_eq!(visit.referrer.map(|s| s.len()), Some(MAX_REFERRER_CHARS));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_refused() {
        let visit = record(true, Visitor { user_agent: Some(b"caf\xe9"), ..Visitor::default() });
        assert_eq!(visit.user_agent.as_deref(), Some("caf\u{fffd}"));
    }
}
