//! Applying the domain blocklist to links that exist: every link whose target is
//! on a blocklisted domain is disabled, with the reason and an audit row.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::error::ApplicationError;
use crate::ports::{StoreError, TargetBlocklist};

/// Links are read in batches of this many.
const BATCH: u32 = 1_000;

/// A link as the blocklist sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTarget {
    pub id: Uuid,
    pub phrase: String,
    /// The target's host, normalised (lower case, IDNA, no trailing dot).
    pub host: String,
}

/// A link the blocklist takes down, and the listed domain it matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takedown {
    pub link: LinkTarget,
    pub domain: String,
}

/// What take-downs need of the link store.
#[async_trait]
pub trait LinkTakedowns: Send + Sync {
    /// Up to `limit` links that are not disabled, in id order, after `after`.
    async fn links_after(&self, after: Option<Uuid>, limit: u32) -> Result<Vec<LinkTarget>, StoreError>;

    /// Disables the links of `takedowns` (those not disabled meanwhile) with the
    /// reason `blocklisted: <domain>`, each with a `link.disabled` audit row by
    /// `actor`, and evicts them from the caches as any disable does. Returns how
    /// many it disabled.
    async fn disable(&self, takedowns: &[Takedown], actor: &str) -> Result<u64, StoreError>;
}

/// What an apply found and did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlocklistReport {
    /// Every link that matched, in id order.
    pub matched: Vec<Takedown>,
    /// How many of them were disabled now (0 for a dry run).
    pub disabled: u64,
}

/// The apply-blocklist use case.
#[derive(Clone)]
pub struct ApplyBlocklist {
    links: Arc<dyn LinkTakedowns>,
    blocklist: Arc<dyn TargetBlocklist>,
}

impl ApplyBlocklist {
    pub fn new(links: Arc<dyn LinkTakedowns>, blocklist: Arc<dyn TargetBlocklist>) -> Self {
        Self { links, blocklist }
    }

    /// Finds the links the blocklist matches and, unless `dry_run`, disables them
    /// batch by batch.
    pub async fn execute(&self, actor: &str, dry_run: bool) -> Result<BlocklistReport, ApplicationError> {
        let mut report = BlocklistReport::default();
        let mut after = None;
        loop {
            let batch = self.links.links_after(after, BATCH).await?;
            let Some(last) = batch.last() else { break };
            after = Some(last.id);
            let matched: Vec<Takedown> = batch
                .into_iter()
                .filter_map(|link| self.blocklist.blocked_by(&link.host).map(|domain| Takedown { link, domain }))
                .collect();
            if !dry_run && !matched.is_empty() {
                report.disabled += self.links.disable(&matched, actor).await?;
            }
            report.matched.extend(matched);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    struct Links(Vec<LinkTarget>, Mutex<Vec<String>>);

    #[async_trait]
    impl LinkTakedowns for Links {
        async fn links_after(&self, after: Option<Uuid>, limit: u32) -> Result<Vec<LinkTarget>, StoreError> {
            Ok(self.0.iter().filter(|l| after.is_none_or(|a| l.id > a)).take(limit as usize).cloned().collect())
        }
        async fn disable(&self, takedowns: &[Takedown], _: &str) -> Result<u64, StoreError> {
            let mut disabled = self.1.lock().expect("lock");
            disabled.extend(takedowns.iter().map(|t| t.link.phrase.clone()));
            Ok(takedowns.len() as u64)
        }
    }

    struct Evil;
    impl TargetBlocklist for Evil {
        fn blocked_by(&self, host: &str) -> Option<String> {
            host.ends_with("evil.example").then(|| "evil.example".to_owned())
        }
    }

    #[tokio::test]
    async fn matching_links_are_disabled_unless_dry_run() {
        let link =
            |n: u128, host: &str| LinkTarget { id: Uuid::from_u128(n), phrase: format!("p{n}"), host: host.into() };
        let links = Arc::new(Links(
            vec![link(1, "good.example"), link(2, "www.evil.example"), link(3, "evil.example")],
            Mutex::default(),
        ));
        let apply = ApplyBlocklist::new(links.clone(), Arc::new(Evil));
        let report = apply.execute("cli", true).await.expect("dry run");
        assert_eq!(report.matched.len(), 2);
        assert_eq!(report.disabled, 0);
        assert!(links.1.lock().expect("lock").is_empty());
        let report = apply.execute("cli", false).await.expect("apply");
        assert_eq!(report.disabled, 2);
        assert_eq!(*links.1.lock().expect("lock"), ["p2", "p3"]);
    }
}
