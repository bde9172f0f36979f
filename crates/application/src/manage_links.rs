//! Managing a link after it is made: edit (merge patch), disable, delete (the
//! phrase then quarantined), erase its visits. Every use case is scoped to the
//! caller's links, writes its audit row and its `link.changed` event in the
//! store's transaction, and then evicts the phrase from the caches.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use offndat_domain::{Link, LinkState, Phrase, TargetUrl};
use serde_json::{Map, Value};

use crate::actor::{Actor, Role};
use crate::error::ApplicationError;
use crate::events::LinkChange;
use crate::generate_link::{GenerateLink, Input, ValidationFailure, parse_expiry, parse_max_visits};
use crate::list_links::{LinkPage, ListLinksQuery};
use crate::ports::{Clock, LinkResolver, StoreError};

/// Longest `disabledReason`, in characters.
pub const MAX_DISABLED_REASON_CHARS: usize = 500;

/// A JSON merge patch of a link, as it arrived: for each field absent, `null`
/// (clear) or a value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EditLinkCommand {
    pub target_url: Patch<Value>,
    pub expires_at: Patch<Value>,
    pub max_visits: Patch<Value>,
    pub disabled: Patch<Value>,
    pub disabled_reason: Patch<Value>,
}

/// One field of a merge patch.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Patch<T> {
    #[default]
    Absent,
    Null,
    Set(T),
}

/// A validated edit: `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkEdit {
    pub target_url: Option<TargetUrl>,
    pub expires_at: Option<Option<DateTime<Utc>>>,
    pub max_visits: Option<Option<u32>>,
    pub disabled: Option<bool>,
    pub disabled_reason: Option<Option<String>>,
}

impl LinkEdit {
    /// What the change is called in the event and the audit log.
    pub fn change(&self) -> LinkChange {
        match self.disabled {
            Some(true) => LinkChange::Disabled,
            Some(false) => LinkChange::Enabled,
            None => LinkChange::Edited,
        }
    }

    /// The audit row's detail: the fields set, as sent.
    fn detail(&self) -> Value {
        let mut detail = Map::new();
        let time = |at: &Option<DateTime<Utc>>| at.map_or(Value::Null, |at| Value::String(at.to_rfc3339()));
        if let Some(url) = &self.target_url {
            detail.insert("targetUrl".into(), url.as_str().into());
        }
        if let Some(at) = &self.expires_at {
            detail.insert("expiresAt".into(), time(at));
        }
        if let Some(max) = self.max_visits {
            detail.insert("maxVisits".into(), max.map_or(Value::Null, Value::from));
        }
        if let Some(disabled) = self.disabled {
            detail.insert("disabled".into(), disabled.into());
        }
        if let Some(reason) = &self.disabled_reason {
            detail.insert("disabledReason".into(), reason.clone().map_or(Value::Null, Value::from));
        }
        Value::Object(detail)
    }
}

/// What an audit row records besides the link's phrase.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkAuditRecord {
    /// The acting key's name.
    pub actor: String,
    pub change: LinkChange,
    pub detail: Value,
    pub at: DateTime<Utc>,
}

/// What erasing a link's visits removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErasedVisits {
    /// Rows of the raw visit log.
    pub raw_visits: u64,
    /// Visits shown as the link's newest (with IP, user agent and referrer).
    pub recent_visits: u64,
    /// Rows of the link's hourly and daily rollups.
    pub rollup_rows: u64,
}

/// A link looked up for management.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Managed<T> {
    Found(T),
    /// Deleted; its tombstone is visible to the caller.
    Deleted,
    Missing,
}

/// Storage for managing links. Every call is limited to `scope` (`None`: every
/// link; `Some(id)`: only links whose owner is key `id`); a link outside it MUST
/// look missing. Changes MUST commit together with their audit row and a
/// `link.changed` outbox row.
#[async_trait]
pub trait LinkAdminStore: Send + Sync {
    /// Whether `phrase` belongs to a deleted link visible within `scope`.
    async fn is_deleted(&self, phrase: &Phrase, scope: Option<i64>) -> Result<bool, StoreError>;

    /// Applies `edit`; `None` if no such link. A changed `max_visits` recomputes
    /// whether the limit is reached from the counted human visits.
    async fn edit(
        &self,
        phrase: &Phrase,
        scope: Option<i64>,
        edit: &LinkEdit,
        audit: &LinkAuditRecord,
    ) -> Result<Option<Link>, StoreError>;

    /// Deletes the link, its visits and rollups, and leaves a tombstone that keeps
    /// the phrase from being issued before `quarantined_until`. False if no such link.
    async fn delete(
        &self,
        phrase: &Phrase,
        scope: Option<i64>,
        quarantined_until: DateTime<Utc>,
        audit: &LinkAuditRecord,
    ) -> Result<bool, StoreError>;

    /// Erases the link's stored visits (raw log, newest visits, per-link rollups);
    /// its totals stay. `None` if no such link.
    async fn erase_visits(
        &self,
        phrase: &Phrase,
        scope: Option<i64>,
        audit: &LinkAuditRecord,
    ) -> Result<Option<ErasedVisits>, StoreError>;

    /// One page of the links within `scope` matching `query`, states decided at `now`.
    async fn list(
        &self,
        query: &ListLinksQuery,
        scope: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<LinkPage, StoreError>;
}

/// The link-management use cases.
#[derive(Clone)]
pub struct ManageLinks {
    store: Arc<dyn LinkAdminStore>,
    resolver: Arc<dyn LinkResolver>,
    clock: Arc<dyn Clock>,
    /// Create's validation, so edits obey every rule creates do.
    generate: GenerateLink,
    quarantine: TimeDelta,
}

impl ManageLinks {
    pub fn new(
        store: Arc<dyn LinkAdminStore>,
        resolver: Arc<dyn LinkResolver>,
        clock: Arc<dyn Clock>,
        generate: GenerateLink,
        quarantine_days: u32,
    ) -> Self {
        Self { store, resolver, clock, generate, quarantine: TimeDelta::days(i64::from(quarantine_days)) }
    }

    /// `Gone(Deleted)` if `phrase` is a deleted link the caller may see, else `NotFound`.
    pub async fn missing(&self, phrase: &Phrase, actor: &Actor) -> ApplicationError {
        self.missing_in(phrase, actor.owner_scope()).await
    }

    /// As `missing`, for links within `scope` (`None`: every link, as the public
    /// short URL and stats page see them).
    pub async fn missing_in(&self, phrase: &Phrase, scope: Option<i64>) -> ApplicationError {
        match self.store.is_deleted(phrase, scope).await {
            Ok(true) => ApplicationError::Gone(LinkState::Deleted),
            Ok(false) => ApplicationError::NotFound,
            Err(error) => error.into(),
        }
    }

    /// Applies a merge patch and returns the link as it now is; `None` for a
    /// patch that changes nothing (`{}`), which writes nothing either: the
    /// caller then reads the link as for a `GET` (and gets its 404 or 410).
    pub async fn edit(
        &self,
        phrase: &Phrase,
        command: &EditLinkCommand,
        actor: &Actor,
    ) -> Result<Option<Link>, ApplicationError> {
        let edit = self.validate(command).map_err(ApplicationError::Validation)?;
        if edit == LinkEdit::default() {
            return Ok(None);
        }
        // A link taken down (by an admin, or by `blocklist apply`) must not be put
        // back up by the key that made it: only admins enable links.
        if edit.disabled == Some(false) && actor.role == Role::Creator {
            return Err(ApplicationError::Forbidden);
        }
        let audit = self.audit(actor, edit.change(), edit.detail());
        match self.store.edit(phrase, actor.owner_scope(), &edit, &audit).await? {
            Some(link) => {
                self.resolver.evict(phrase.as_str()).await;
                Ok(Some(link))
            }
            None => Err(self.missing(phrase, actor).await),
        }
    }

    /// Deletes the link; its phrase answers `410 Link.Deleted` from now on.
    pub async fn delete(&self, phrase: &Phrase, actor: &Actor) -> Result<(), ApplicationError> {
        let audit = self.audit(actor, LinkChange::Deleted, Value::Object(Map::new()));
        let until = audit.at + self.quarantine;
        if self.store.delete(phrase, actor.owner_scope(), until, &audit).await? {
            self.resolver.evict(phrase.as_str()).await;
            Ok(())
        } else {
            Err(self.missing(phrase, actor).await)
        }
    }

    /// Erases the link's stored visits and says how many.
    pub async fn erase_visits(&self, phrase: &Phrase, actor: &Actor) -> Result<ErasedVisits, ApplicationError> {
        let audit = self.audit(actor, LinkChange::VisitsErased, Value::Object(Map::new()));
        match self.store.erase_visits(phrase, actor.owner_scope(), &audit).await? {
            Some(erased) => Ok(erased),
            None => Err(self.missing(phrase, actor).await),
        }
    }

    /// One page of the caller's links.
    pub async fn list(&self, query: &ListLinksQuery, actor: &Actor) -> Result<LinkPage, ApplicationError> {
        Ok(self.store.list(query, actor.owner_scope(), self.clock.now()).await?)
    }

    fn audit(&self, actor: &Actor, change: LinkChange, detail: Value) -> LinkAuditRecord {
        LinkAuditRecord { actor: actor.name.clone(), change, detail, at: self.clock.now() }
    }

    /// Every failed rule, in the order of the fields.
    fn validate(&self, command: &EditLinkCommand) -> Result<LinkEdit, Vec<ValidationFailure>> {
        let mut failures = Vec::new();
        let mut edit = LinkEdit::default();
        match &command.target_url {
            Patch::Absent => {}
            Patch::Null => failures.extend(self.generate.validate_target(None).err().unwrap_or_default()),
            // A value of the wrong type counts as absent, as on create.
            Patch::Set(value) => match self.generate.validate_target(value.as_str()) {
                Ok(url) => edit.target_url = Some(url),
                Err(errors) => failures.extend(errors),
            },
        }
        let now = self.clock.now();
        match &command.expires_at {
            Patch::Absent => {}
            Patch::Null => edit.expires_at = Some(None),
            Patch::Set(value) => {
                let input = value.as_str().map_or(Input::Mistyped, |s| Input::Given(s.to_owned()));
                match parse_expiry(&input, now) {
                    Ok(at) => edit.expires_at = Some(at),
                    Err(failure) => failures.push(failure),
                }
            }
        }
        match &command.max_visits {
            Patch::Absent => {}
            Patch::Null => edit.max_visits = Some(None),
            Patch::Set(value) => {
                let input = value.as_i64().map_or(Input::Mistyped, Input::Given);
                match parse_max_visits(&input) {
                    Ok(max) => edit.max_visits = Some(max),
                    Err(failure) => failures.push(failure),
                }
            }
        }
        match &command.disabled {
            Patch::Absent => {}
            // `null` clears the flag: the link is enabled.
            Patch::Null => edit.disabled = Some(false),
            Patch::Set(Value::Bool(disabled)) => edit.disabled = Some(*disabled),
            Patch::Set(_) => failures.push(ValidationFailure::DisabledInvalid),
        }
        match &command.disabled_reason {
            Patch::Absent => {}
            Patch::Null => edit.disabled_reason = Some(None),
            // PostgreSQL text cannot hold NUL.
            Patch::Set(Value::String(reason))
                if reason.chars().count() <= MAX_DISABLED_REASON_CHARS && !reason.contains('\0') =>
            {
                let reason = reason.trim();
                edit.disabled_reason = Some((!reason.is_empty()).then(|| reason.to_owned()));
            }
            Patch::Set(_) => failures.push(ValidationFailure::DisabledReasonInvalid),
        }
        // Enabling forgets why it was disabled unless a new reason is given.
        if edit.disabled == Some(false) && edit.disabled_reason.is_none() {
            edit.disabled_reason = Some(None);
        }
        if failures.is_empty() { Ok(edit) } else { Err(failures) }
    }
}
