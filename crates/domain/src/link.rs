//! `Link`: a phrase bound to a target URL, and what is known of its visits.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::catalogue::{Language, Theme};
use crate::link_state::{LinkState, StoredState};
use crate::phrase::Phrase;
use crate::target_url::TargetUrl;

/// A short link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub id: Uuid,
    pub phrase: Phrase,
    pub target_url: TargetUrl,
    pub language: Language,
    pub theme: Theme,
    pub created_at: DateTime<Utc>,
    /// The stored API key that created it; `None` for keys from configuration.
    pub owner_key_id: Option<i64>,
    /// When following it stops working (`410 Link.Expired`).
    pub expires_at: Option<DateTime<Utc>>,
    /// Human visits after which following it stops working.
    pub max_visits: Option<u32>,
    /// Taken down; `disabled_reason` says why.
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    /// The worker found its human visits at `max_visits`.
    pub limit_reached: bool,
}

impl Link {
    /// What the redirect cache keeps of its state.
    pub fn stored_state(&self) -> StoredState {
        StoredState {
            deleted: false,
            disabled: self.disabled,
            limit_reached: self.limit_reached,
            expires_at: self.expires_at,
        }
    }

    /// Its state at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> LinkState {
        self.stored_state().at(now)
    }

    /// Whether a caller limited to `scope` (see `Actor::owner_scope`: `None` is
    /// every link, `Some(id)` only key `id`'s) may see this link.
    pub fn visible_to(&self, scope: Option<i64>) -> bool {
        scope.is_none_or(|owner| self.owner_key_id == Some(owner))
    }
}

/// One recorded visit, in its stored (possibly anonymised) form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    pub visited_at: DateTime<Utc>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub referrer: Option<String>,
    /// The user agent looks like a crawler; recorded and flagged, never hidden.
    pub potential_bot: bool,
}

/// A link with its visit total and newest visits, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStats {
    pub link: Link,
    /// Every visit counted, humans and bots.
    pub visits: i64,
    /// The part of `visits` whose user agent looked like a crawler.
    pub bot_visits: i64,
    pub recent_visits: Vec<Visit>,
}
