//! `LinkStore` on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use offndat_application::ports::{LinkStore, RedirectTarget, StoreError};
use offndat_domain::{Language, Link, LinkStats, Phrase, TargetUrl, Theme, Visit};
use sqlx::PgPool;
use uuid::Uuid;

use super::errors::store_error;
use offndat_application::events::{Event, LinkCreatedV1, RecentVisit};

/// Links in PostgreSQL; `create` writes the link and its outbox row together.
#[derive(Debug, Clone)]
pub struct PgLinkStore {
    pool: PgPool,
    /// Where `find_by_phrase` runs: the main pool unless a lookup pool (with a
    /// statement timeout) is given.
    lookups: PgPool,
}

impl PgLinkStore {
    pub fn new(pool: PgPool) -> Self {
        describe_metrics();
        Self { lookups: pool.clone(), pool }
    }

    /// Runs redirect lookups (`find_by_phrase`) on `lookups`, a pool of their own
    /// (see [`super::lookup_pool`]).
    pub fn with_lookup_pool(mut self, lookups: PgPool) -> Self {
        self.lookups = lookups;
        self
    }
}

/// A `links` row as selected.
pub(super) struct LinkRow {
    pub id: Uuid,
    pub phrase: String,
    pub target_url: String,
    pub language_id: i16,
    pub theme_id: i16,
    pub created_at: DateTime<Utc>,
    pub owner_key_id: Option<i64>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_visits: Option<i32>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub limit_reached_at: Option<DateTime<Utc>>,
}

impl TryFrom<LinkRow> for Link {
    type Error = StoreError;

    fn try_from(row: LinkRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Other(format!("link {} has an invalid {what}", row.id).into());
        Ok(Link {
            id: row.id,
            phrase: Phrase::parse(&row.phrase).map_err(|_| corrupt("phrase"))?,
            target_url: TargetUrl::from_stored(&row.target_url).map_err(|_| corrupt("target URL"))?,
            language: Language::from_id(row.language_id.into()).ok_or_else(|| corrupt("language"))?,
            theme: Theme::from_id(row.theme_id.into()).ok_or_else(|| corrupt("theme"))?,
            created_at: row.created_at,
            owner_key_id: row.owner_key_id,
            expires_at: row.expires_at,
            max_visits: row.max_visits.and_then(|n| u32::try_from(n).ok()),
            disabled: row.disabled_at.is_some(),
            disabled_reason: row.disabled_reason,
            limit_reached: row.limit_reached_at.is_some(),
        })
    }
}

/// Links created, by language and theme.
pub const LINKS_CREATED_TOTAL: &str = "offndat_links_created_total";

/// The `theme` label: the theme's name in snake case, stable across renames of its display text.
fn theme_label(theme: Theme) -> &'static str {
    match theme {
        Theme::None => "none",
        Theme::ProperNames => "proper_names",
        Theme::Politicians => "politicians",
    }
}

/// Registers `offndat_links_created_total` at zero for every language and theme,
/// so the dashboard's panels and rates exist before the first link.
fn describe_metrics() {
    metrics::describe_counter!(LINKS_CREATED_TOTAL, "Links created, by language and theme.");
    for language in Language::ALL {
        for theme in Theme::ALL {
            metrics::counter!(LINKS_CREATED_TOTAL, "language" => language.code(), "theme" => theme_label(theme))
                .absolute(0);
        }
    }
}

#[async_trait]
impl LinkStore for PgLinkStore {
    async fn create(&self, link: &Link) -> Result<(), StoreError> {
        let event = Event::LinkCreated(LinkCreatedV1::from(link));
        let payload = event.payload();
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // The unique index decides: a taken phrase inserts nothing, and the caller
        // retries with a fresh one. Never check-then-insert. A deleted link's
        // phrase in quarantine counts as taken.
        let inserted = sqlx::query!(
            "INSERT INTO links (id, phrase, target_url, language_id, theme_id, created_at, owner_key_id,
                                expires_at, max_visits)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9
             WHERE NOT EXISTS (SELECT 1 FROM phrase_tombstones WHERE phrase = $2 AND quarantined_until > $6)
             ON CONFLICT (phrase) DO NOTHING",
            link.id,
            link.phrase.as_str(),
            link.target_url.as_str(),
            i16::from(link.language.id()),
            i16::from(link.theme.id()),
            link.created_at,
            link.owner_key_id,
            link.expires_at,
            link.max_visits.map(|n| n as i32),
        )
        .execute(&mut *tx)
        .await
        .map_err(store_error)?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await.map_err(store_error)?;
            return Err(StoreError::PhraseTaken);
        }
        sqlx::query!(
            "INSERT INTO outbox (id, event_type, payload, headers, created_at) VALUES ($1, $2, $3, $4, $5)",
            Uuid::now_v7(),
            event.event_type(),
            payload,
            crate::trace_context::current_headers(),
            link.created_at,
        )
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        metrics::counter!(LINKS_CREATED_TOTAL, "language" => link.language.code(), "theme" => theme_label(link.theme))
            .increment(1);
        Ok(())
    }

    async fn find_by_phrase(&self, phrase: &Phrase) -> Result<Option<Link>, StoreError> {
        let row = sqlx::query_as!(
            LinkRow,
            "SELECT id, phrase, target_url, language_id, theme_id, created_at, owner_key_id, expires_at, max_visits,
                    disabled_at, disabled_reason, limit_reached_at
             FROM links WHERE phrase = $1",
            phrase.as_str()
        )
        .fetch_optional(&self.lookups)
        .await
        .map_err(store_error)?;
        row.map(Link::try_from).transpose()
    }

    async fn redirect_target(&self, phrase: &Phrase) -> Result<Option<RedirectTarget>, StoreError> {
        if let Some(link) = self.find_by_phrase(phrase).await? {
            return Ok(Some(RedirectTarget::from(&link)));
        }
        // Unknown phrases are the rare path (typos, scanners): one more index probe.
        let tombstone = sqlx::query_scalar!("SELECT link_id FROM phrase_tombstones WHERE phrase = $1", phrase.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(tombstone.map(RedirectTarget::deleted))
    }

    async fn stats_by_phrase(&self, phrase: &Phrase, keep: u32) -> Result<Option<LinkStats>, StoreError> {
        let Some(link) = self.find_by_phrase(phrase).await? else {
            return Ok(None);
        };
        let summary = sqlx::query!(
            r#"SELECT s.total_visits AS "total!", s.bot_visits AS "bots!", r.visits AS "recent_visits?"
               FROM visit_summaries s LEFT JOIN link_recent_visits r ON r.link_id = s.link_id
               WHERE s.link_id = $1"#,
            link.id
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        let (visits, bot_visits, recent) = match summary {
            Some(row) => (row.total, row.bots, row.recent_visits),
            None => (0, 0, None),
        };
        let mut recent_visits: Vec<Visit> = match recent {
            Some(json) => serde_json::from_value::<Vec<RecentVisit>>(json)
                .map_err(|e| StoreError::Other(format!("link {} has unreadable recent visits: {e}", link.id).into()))?
                .into_iter()
                .map(|v| Visit {
                    visited_at: v.visited_at,
                    ip_address: v.ip_address,
                    user_agent: v.user_agent,
                    referrer: v.referrer,
                    potential_bot: v.bot,
                })
                .collect(),
            None => Vec::new(),
        };
        recent_visits.truncate(keep as usize);
        Ok(Some(LinkStats { link, visits, bot_visits, recent_visits }))
    }
}
