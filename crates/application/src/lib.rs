//! Use cases of offndat and the ports they need. Adapters live in
//! `offndat-infrastructure`; this crate knows no database, cache or broker.

pub mod actor;
pub mod apply_events;
pub mod audit;
pub mod blocklist;
pub mod catalogues;
pub mod error;
pub mod events;
pub mod generate_link;
pub mod idempotency;
pub mod keys;
pub mod list_links;
pub mod manage_links;
pub mod pagination;
pub mod ports;
pub mod read_link;
pub mod read_visit_stats;
pub mod record_visit;
pub mod resolve_link;
pub mod visit_tally;

pub use actor::{Actor, Role};
pub use apply_events::{ApplyEvents, CompactRollups, PruneRecords};
pub use audit::{AuditEntry, AuditLog, ReadAudit};
pub use blocklist::{ApplyBlocklist, BlocklistReport};
pub use error::ApplicationError;
pub use generate_link::{GenerateLink, GenerateLinkCommand, Input, TargetTerms, ValidationFailure};
pub use idempotency::{CreateLink, Created, IdempotencyKey};
pub use keys::{CreatedKey, KeyAuthenticator, KeyCheck, KeyRecord, KeyStore, ManageKeys};
pub use manage_links::{EditLinkCommand, ErasedVisits, LinkAdminStore, ManageLinks, Patch};
pub use pagination::{Page, PageRequest};
pub use read_link::ReadLinkStats;
pub use read_visit_stats::{ReadVisitStats, StatsQuery};
pub use record_visit::{RecordVisit, Visitor};
pub use resolve_link::ResolveLink;
pub use visit_tally::VisitTally;
