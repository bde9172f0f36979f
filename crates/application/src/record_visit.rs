//! Record a visit: turn what a redirect saw into the stored form (anonymised,
//! bounded) and hand it to the visit sink without waiting.

use std::net::IpAddr;
use std::sync::Arc;

use offndat_domain::NewVisit;
use offndat_domain::visit::{MAX_REFERRER_CHARS, MAX_USER_AGENT_CHARS, anonymize_ip, bounded_text};
use uuid::Uuid;

use crate::ports::{Clock, VisitSink};

/// What a redirect knows about its visitor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Visitor<'a> {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
    pub referrer: Option<&'a str>,
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
    pub fn execute(&self, link_id: Uuid, visitor: &Visitor<'_>) {
        let ip = visitor.ip.map(|ip| if self.anonymize_ips { anonymize_ip(ip) } else { ip });
        self.sink.record(NewVisit {
            link_id,
            visited_at: self.clock.now(),
            ip_address: ip.map(|ip| ip.to_string()),
            user_agent: visitor.user_agent.and_then(|ua| bounded_text(ua, MAX_USER_AGENT_CHARS)),
            referrer: visitor.referrer.and_then(|r| bounded_text(r, MAX_REFERRER_CHARS)),
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::{DateTime, Utc};

    use super::*;

    #[derive(Default)]
    struct Collect(Mutex<Vec<NewVisit>>);
    impl VisitSink for Collect {
        fn record(&self, visit: NewVisit) {
            self.0.lock().expect("lock").push(visit);
        }
    }
    struct Epoch;
    impl Clock for Epoch {
        fn now(&self) -> DateTime<Utc> {
            DateTime::UNIX_EPOCH
        }
    }

    fn record(anonymize: bool, visitor: Visitor<'_>) -> NewVisit {
        let sink = Arc::new(Collect::default());
        RecordVisit::new(sink.clone(), Arc::new(Epoch), anonymize).execute(Uuid::nil(), &visitor);
        sink.0.lock().expect("lock").pop().expect("recorded")
    }

    #[test]
    fn anonymises_when_told() {
        let visit = record(
            true,
            Visitor { ip: "203.0.113.77".parse().ok(), user_agent: Some("Googlebot/2.1"), referrer: Some(" ") },
        );
        assert_eq!(visit.ip_address.as_deref(), Some("203.0.113.0"));
        assert_eq!(visit.user_agent.as_deref(), Some("Googlebot/2.1"));
        assert_eq!(visit.referrer, None);
        assert_eq!(visit.visited_at, DateTime::UNIX_EPOCH);
    }

    #[test]
    fn keeps_whole_ips_when_told_and_bounds_text() {
        let long = "x".repeat(5000);
        let visit =
            record(false, Visitor { ip: "203.0.113.77".parse().ok(), user_agent: Some(&long), referrer: Some(&long) });
        assert_eq!(visit.ip_address.as_deref(), Some("203.0.113.77"));
        assert_eq!(visit.user_agent.map(|s| s.len()), Some(MAX_USER_AGENT_CHARS));
        assert_eq!(visit.referrer.map(|s| s.len()), Some(MAX_REFERRER_CHARS));
    }
}
