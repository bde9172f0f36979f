//! Writing batches of visits: the visit rows and their `link.visited` outbox rows,
//! in one transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use offndat_domain::NewVisit;
use sqlx::PgPool;
use uuid::Uuid;

use crate::events::{LINK_VISITED, LinkVisitedV1, LinkVisits};

/// Most links counted in one `link.visited` message, so a message stays small.
const MAX_LINKS_PER_MESSAGE: usize = 1_000;

/// Decides whether a user agent belongs to a crawler.
pub trait BotCheck: Send + Sync {
    fn is_bot(&self, user_agent: &str) -> bool;
}

/// The `isbot` crate's maintained list of crawler patterns.
#[derive(Default)]
pub struct IsBot(isbot::Bots);

impl BotCheck for IsBot {
    fn is_bot(&self, user_agent: &str) -> bool {
        self.0.is_bot(user_agent)
    }
}

/// Writes visit batches to PostgreSQL.
pub struct PgVisitStore {
    pool: PgPool,
    bots: Box<dyn BotCheck>,
}

impl PgVisitStore {
    pub fn new(pool: PgPool, bots: Box<dyn BotCheck>) -> Self {
        Self { pool, bots }
    }

    /// Inserts `visits` and the `link.visited` messages counting them, atomically:
    /// either every visit and its event are stored, or none.
    pub async fn write(&self, visits: &[NewVisit]) -> Result<(), sqlx::Error> {
        if visits.is_empty() {
            return Ok(());
        }
        let mut link_ids = Vec::with_capacity(visits.len());
        let mut visited_at = Vec::with_capacity(visits.len());
        let mut ips = Vec::with_capacity(visits.len());
        let mut agents = Vec::with_capacity(visits.len());
        let mut referrers = Vec::with_capacity(visits.len());
        let mut bots = Vec::with_capacity(visits.len());
        for visit in visits {
            link_ids.push(visit.link_id);
            visited_at.push(visit.visited_at);
            ips.push(visit.ip_address.clone());
            bots.push(visit.user_agent.as_deref().is_some_and(|ua| self.bots.is_bot(ua)));
            agents.push(visit.user_agent.clone());
            referrers.push(visit.referrer.clone());
        }
        let messages = visit_messages(visits);

        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            "INSERT INTO visits (link_id, visited_at, ip_address, user_agent, referrer, potential_bot)
             SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::bool[])",
            &link_ids,
            &visited_at,
            &ips as &[Option<String>],
            &agents as &[Option<String>],
            &referrers as &[Option<String>],
            &bots,
        )
        .execute(&mut *tx)
        .await?;
        let now = Utc::now();
        for payload in messages {
            let payload = serde_json::to_value(payload).map_err(|e| sqlx::Error::Encode(e.into()))?;
            sqlx::query!(
                "INSERT INTO outbox (id, event_type, payload, created_at) VALUES ($1, $2, $3, $4)",
                Uuid::now_v7(),
                LINK_VISITED,
                payload,
                now,
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }
}

/// Counts `visits` per link, in messages of at most `MAX_LINKS_PER_MESSAGE` links.
fn visit_messages(visits: &[NewVisit]) -> Vec<LinkVisitedV1> {
    let mut per_link: HashMap<Uuid, (u32, DateTime<Utc>)> = HashMap::new();
    for visit in visits {
        let entry = per_link.entry(visit.link_id).or_insert((0, visit.visited_at));
        entry.0 += 1;
        entry.1 = entry.1.max(visit.visited_at);
    }
    let mut links: Vec<LinkVisits> = per_link
        .into_iter()
        .map(|(link_id, (visits, last_visited_at))| LinkVisits { link_id, visits, last_visited_at })
        .collect();
    links.sort_by_key(|l| l.link_id);
    links.chunks(MAX_LINKS_PER_MESSAGE).map(|chunk| LinkVisitedV1 { version: 1, links: chunk.to_vec() }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visit(link: u128, second: i64) -> NewVisit {
        NewVisit {
            link_id: Uuid::from_u128(link),
            visited_at: DateTime::from_timestamp(second, 0).expect("time"),
            ip_address: None,
            user_agent: None,
            referrer: None,
        }
    }

    #[test]
    fn visits_are_counted_per_link() {
        let messages = visit_messages(&[visit(1, 10), visit(2, 5), visit(1, 30), visit(1, 20)]);
        assert_eq!(messages.len(), 1);
        let links = &messages[0].links;
        assert_eq!(links.len(), 2);
        assert_eq!((links[0].visits, links[0].last_visited_at.timestamp()), (3, 30));
        assert_eq!((links[1].visits, links[1].last_visited_at.timestamp()), (1, 5));
    }

    #[test]
    fn many_links_split_into_several_messages() {
        let visits: Vec<_> = (0..2_500).map(|i| visit(i, 1)).collect();
        let messages = visit_messages(&visits);
        assert_eq!(messages.iter().map(|m| m.links.len()).collect::<Vec<_>>(), [1000, 1000, 500]);
        assert_eq!(messages.iter().flat_map(|m| &m.links).map(|l| l.visits).sum::<u32>(), 2_500);
    }

    #[test]
    fn crawlers_are_recognised() {
        let bots = IsBot::default();
        assert!(bots.is_bot("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"));
        assert!(!bots.is_bot(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
        ));
    }
}
