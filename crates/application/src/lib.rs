//! Use cases of offndat and the ports they need. Adapters live in
//! `offndat-infrastructure`; this crate knows no database, cache or broker.

pub mod catalogues;
pub mod error;
pub mod generate_link;
pub mod ports;
pub mod read_link;
pub mod record_visit;
pub mod resolve_link;

pub use error::ApplicationError;
pub use generate_link::{GenerateLink, GenerateLinkCommand, ValidationFailure};
pub use read_link::ReadLinkStats;
pub use record_visit::{RecordVisit, Visitor};
pub use resolve_link::ResolveLink;
