//! `LinkState`: whether a link can be followed now, and if not, why. The one place
//! that decides which `410` a redirect answers, so every renderer (problem+json,
//! HTML pages) shows the same reason.

use chrono::{DateTime, Utc};

/// What following a link does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkState {
    /// Redirects.
    Active,
    /// Taken down by its owner or an operator.
    Disabled,
    /// Past its `expiresAt`.
    Expired,
    /// Its human visits reached `maxVisits`.
    VisitLimitReached,
    /// Deleted; the phrase is quarantined.
    Deleted,
}

/// What is stored about a link's state, independent of the clock: the flags the
/// redirect cache carries. `expires_at` is compared with the clock at request time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoredState {
    pub deleted: bool,
    pub disabled: bool,
    pub limit_reached: bool,
    pub expires_at: Option<DateTime<Utc>>,
}

impl StoredState {
    /// The state at `now`. Precedence: deleted, disabled, expired, limit reached:
    /// the reason a person acted on wins over one that follows from time or counts.
    pub fn at(&self, now: DateTime<Utc>) -> LinkState {
        if self.deleted {
            LinkState::Deleted
        } else if self.disabled {
            LinkState::Disabled
        } else if self.expires_at.is_some_and(|at| at <= now) {
            LinkState::Expired
        } else if self.limit_reached {
            LinkState::VisitLimitReached
        } else {
            LinkState::Active
        }
    }
}

impl LinkState {
    /// The name used in the API (`state`, the list filter).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Expired => "expired",
            Self::VisitLimitReached => "visit-limit-reached",
            Self::Deleted => "deleted",
        }
    }

    /// Whether a redirect follows the link.
    pub fn is_active(self) -> bool {
        self == Self::Active
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    #[test]
    fn the_reason_a_person_gave_wins_over_time_and_counts() {
        let now = Utc::now();
        let past = Some(now - TimeDelta::seconds(1));
        let all = StoredState { deleted: true, disabled: true, limit_reached: true, expires_at: past };
        assert_eq!(all.at(now), LinkState::Deleted);
        assert_eq!(StoredState { deleted: false, ..all }.at(now), LinkState::Disabled);
        assert_eq!(StoredState { deleted: false, disabled: false, ..all }.at(now), LinkState::Expired);
        let counted = StoredState { limit_reached: true, ..StoredState::default() };
        assert_eq!(counted.at(now), LinkState::VisitLimitReached);
        assert_eq!(StoredState::default().at(now), LinkState::Active);
    }

    #[test]
    fn expiry_is_decided_by_the_clock() {
        let at = Utc::now();
        let state = StoredState { expires_at: Some(at), ..StoredState::default() };
        assert_eq!(state.at(at - TimeDelta::milliseconds(1)), LinkState::Active);
        assert_eq!(state.at(at), LinkState::Expired);
    }
}
