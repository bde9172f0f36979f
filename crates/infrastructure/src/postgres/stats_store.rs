//! `VisitStatsStore` on PostgreSQL: sums over the hourly or daily rollup tables
//! within a range, by bucket and by dimension value. Index range scans on the
//! tables' primary keys; raw visits are never read.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use offndat_application::ports::{RollupRows, StoreError, VisitStatsStore};
use offndat_domain::Dimension;
use offndat_domain::stats::{Granularity, StatsRange, VisitCounts};
use sqlx::PgPool;
use uuid::Uuid;

use super::errors::store_error;
use super::rollups::{LINKS_CREATED, ORPHAN_VISITS};

/// Rollups in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgVisitStatsStore {
    pool: PgPool,
}

impl PgVisitStatsStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// A bucket's sums as selected.
struct BucketRow {
    bucket: DateTime<Utc>,
    dimension: i16,
    human: i64,
    bot: i64,
}

/// A dimension value's sums as selected.
struct ValueRow {
    dimension: i16,
    value: String,
    human: i64,
    bot: i64,
}

fn dimensions(rows: Vec<ValueRow>) -> Vec<(Dimension, String, VisitCounts)> {
    rows.into_iter()
        .filter_map(|r| Some((Dimension::from_id(r.dimension)?, r.value, VisitCounts { human: r.human, bot: r.bot })))
        .collect()
}

#[async_trait]
impl VisitStatsStore for PgVisitStatsStore {
    async fn link_rollups(&self, link_id: Uuid, range: &StatsRange) -> Result<RollupRows, StoreError> {
        // One connection for both queries, one after the other: two at once per
        // request starved the pool under load (each request holding one and
        // waiting for a second).
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        // One row per link and bucket in `link_rollups_*`, with the values' counts
        // in JSON objects keyed by dimension id and value; rows from before that
        // layout stay in `link_visits_*` (one row per dimension value, totals read
        // from the referrer dimension 0, where every visit is once). Every visit is
        // in exactly one of the two, so summing both is exact. By day, the days
        // from the link's `daily_pending_from` on (not yet compacted) are summed
        // from its hourly rows instead: every day is read from exactly one.
        let (buckets, values) = match range.granularity {
            Granularity::Hour => {
                let buckets = sqlx::query_as!(
                    BucketRow,
                    r#"SELECT bucket AS "bucket!", 0::smallint AS "dimension!", sum(human)::bigint AS "human!", sum(bot)::bigint AS "bot!"
                       FROM (SELECT bucket, human, bot FROM link_rollups_hourly
                             WHERE link_id = $1 AND bucket >= $2 AND bucket < $3
                             UNION ALL
                             SELECT bucket, human, bot FROM link_visits_hourly
                             WHERE link_id = $1 AND bucket >= $2 AND bucket < $3 AND dimension = 0) r
                       GROUP BY bucket"#,
                    link_id,
                    range.from,
                    range.to,
                )
                .fetch_all(&mut *conn)
                .await;
                let values = sqlx::query_as!(
                    ValueRow,
                    r#"SELECT dimension AS "dimension!", value AS "value!", sum(human)::bigint AS "human!", sum(bot)::bigint AS "bot!"
                       FROM (SELECT left(e.key, 1)::smallint AS dimension, substr(e.key, 2) AS value, e.human, e.bot
                             FROM link_rollups_hourly r,
                                  LATERAL (SELECT key, value::bigint AS human, 0::bigint AS bot FROM jsonb_each(r.human_by)
                                           UNION ALL
                                           SELECT key, 0::bigint, value::bigint FROM jsonb_each(r.bot_by)) e
                             WHERE r.link_id = $1 AND r.bucket >= $2 AND r.bucket < $3
                             UNION ALL
                             SELECT dimension, value, human, bot FROM link_visits_hourly
                             WHERE link_id = $1 AND bucket >= $2 AND bucket < $3) v
                       GROUP BY dimension, value"#,
                    link_id,
                    range.from,
                    range.to,
                )
                .fetch_all(&mut *conn)
                .await;
                buckets.and_then(|b| values.map(|v| (b, v)))
            }
            Granularity::Day => {
                let buckets = sqlx::query_as!(
                    BucketRow,
                    r#"WITH p AS (SELECT COALESCE((SELECT daily_pending_from FROM visit_summaries WHERE link_id = $1),
                                                 'infinity') AS from_day)
                       SELECT bucket AS "bucket!", 0::smallint AS "dimension!", sum(human)::bigint AS "human!", sum(bot)::bigint AS "bot!"
                       FROM (SELECT d.bucket, d.human, d.bot FROM link_rollups_daily d, p
                             WHERE d.link_id = $1 AND d.bucket >= $2 AND d.bucket < LEAST($3, p.from_day)
                             UNION ALL
                             SELECT date_trunc('day', h.bucket, 'UTC'), h.human, h.bot FROM link_rollups_hourly h, p
                             WHERE h.link_id = $1 AND h.bucket >= GREATEST($2, p.from_day) AND h.bucket < $3
                             UNION ALL
                             SELECT bucket, human, bot FROM link_visits_daily
                             WHERE link_id = $1 AND bucket >= $2 AND bucket < $3 AND dimension = 0) r
                       GROUP BY bucket"#,
                    link_id,
                    range.from,
                    range.to,
                )
                .fetch_all(&mut *conn)
                .await;
                let values = sqlx::query_as!(
                    ValueRow,
                    r#"WITH p AS (SELECT COALESCE((SELECT daily_pending_from FROM visit_summaries WHERE link_id = $1),
                                                 'infinity') AS from_day),
                       r AS (SELECT d.human_by, d.bot_by FROM link_rollups_daily d, p
                             WHERE d.link_id = $1 AND d.bucket >= $2 AND d.bucket < LEAST($3, p.from_day)
                             UNION ALL
                             SELECT h.human_by, h.bot_by FROM link_rollups_hourly h, p
                             WHERE h.link_id = $1 AND h.bucket >= GREATEST($2, p.from_day) AND h.bucket < $3)
                       SELECT dimension AS "dimension!", value AS "value!", sum(human)::bigint AS "human!", sum(bot)::bigint AS "bot!"
                       FROM (SELECT left(e.key, 1)::smallint AS dimension, substr(e.key, 2) AS value, e.human, e.bot
                             FROM r,
                                  LATERAL (SELECT key, value::bigint AS human, 0::bigint AS bot FROM jsonb_each(r.human_by)
                                           UNION ALL
                                           SELECT key, 0::bigint, value::bigint FROM jsonb_each(r.bot_by)) e
                             UNION ALL
                             SELECT dimension, value, human, bot FROM link_visits_daily
                             WHERE link_id = $1 AND bucket >= $2 AND bucket < $3) v
                       GROUP BY dimension, value"#,
                    link_id,
                    range.from,
                    range.to,
                )
                .fetch_all(&mut *conn)
                .await;
                buckets.and_then(|b| values.map(|v| (b, v)))
            }
        }
        .map_err(store_error)?;
        Ok(RollupRows {
            buckets: buckets.into_iter().map(|r| (r.bucket, VisitCounts { human: r.human, bot: r.bot })).collect(),
            dimensions: dimensions(values),
            ..RollupRows::default()
        })
    }

    async fn service_rollups(&self, range: &StatsRange) -> Result<RollupRows, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        let (buckets, values) = match range.granularity {
            Granularity::Hour => {
                let buckets = sqlx::query_as!(
                    BucketRow,
                    r#"SELECT bucket, dimension, sum(human)::bigint AS "human!", sum(bot)::bigint AS "bot!"
                       FROM service_visits_hourly
                       WHERE bucket >= $1 AND bucket < $2 AND dimension IN (0, $3::smallint, $4::smallint)
                       GROUP BY bucket, dimension"#,
                    range.from,
                    range.to,
                    LINKS_CREATED,
                    ORPHAN_VISITS,
                )
                .fetch_all(&mut *conn)
                .await;
                let values = sqlx::query_as!(
                    ValueRow,
                    r#"SELECT dimension, value, sum(human)::bigint AS "human!", sum(bot)::bigint AS "bot!"
                       FROM service_visits_hourly
                       WHERE bucket >= $1 AND bucket < $2 AND dimension < $3::smallint
                       GROUP BY dimension, value"#,
                    range.from,
                    range.to,
                    LINKS_CREATED,
                )
                .fetch_all(&mut *conn)
                .await;
                buckets.and_then(|b| values.map(|v| (b, v)))
            }
            Granularity::Day => {
                let buckets = sqlx::query_as!(
                    BucketRow,
                    r#"SELECT bucket, dimension, sum(human)::bigint AS "human!", sum(bot)::bigint AS "bot!"
                       FROM service_visits_daily
                       WHERE bucket >= $1 AND bucket < $2 AND dimension IN (0, $3::smallint, $4::smallint)
                       GROUP BY bucket, dimension"#,
                    range.from,
                    range.to,
                    LINKS_CREATED,
                    ORPHAN_VISITS,
                )
                .fetch_all(&mut *conn)
                .await;
                let values = sqlx::query_as!(
                    ValueRow,
                    r#"SELECT dimension, value, sum(human)::bigint AS "human!", sum(bot)::bigint AS "bot!"
                       FROM service_visits_daily
                       WHERE bucket >= $1 AND bucket < $2 AND dimension < $3::smallint
                       GROUP BY dimension, value"#,
                    range.from,
                    range.to,
                    LINKS_CREATED,
                )
                .fetch_all(&mut *conn)
                .await;
                buckets.and_then(|b| values.map(|v| (b, v)))
            }
        }
        .map_err(store_error)?;
        let mut rows = RollupRows { dimensions: dimensions(values), ..RollupRows::default() };
        for row in buckets {
            match row.dimension {
                0 => rows.buckets.push((row.bucket, VisitCounts { human: row.human, bot: row.bot })),
                LINKS_CREATED => rows.links_created.push((row.bucket, row.human)),
                ORPHAN_VISITS => rows.orphan_visits.push((row.bucket, row.human)),
                _ => {}
            }
        }
        Ok(rows)
    }
}
