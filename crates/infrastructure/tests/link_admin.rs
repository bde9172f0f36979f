//! `PgLinkAdminStore` against a real PostgreSQL: every call is limited to the
//! caller's scope, so another owner's link looks missing to a creator key, and
//! nothing is changed or audited for it.

use chrono::Utc;
use offndat_application::events::LinkChange;
use offndat_application::list_links::ListLinksQuery;
use offndat_application::manage_links::{LinkAdminStore, LinkAuditRecord, LinkEdit};
use offndat_application::ports::LinkStore;
use offndat_domain::{Language, Link, Phrase, TargetUrl, Theme};
use offndat_infrastructure::postgres::{PgLinkAdminStore, PgLinkStore};
use offndat_test_support::TestDatabase;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

fn link(phrase: &str, owner: i64) -> Link {
    Link {
        id: Uuid::now_v7(),
        phrase: Phrase::parse(phrase).expect("phrase"),
        target_url: TargetUrl::from_stored("https://example.com/").expect("url"),
        language: Language::English,
        theme: Theme::None,
        created_at: Utc::now(),
        owner_key_id: Some(owner),
        expires_at: None,
        max_visits: None,
        disabled: false,
        disabled_reason: None,
        limit_reached: false,
    }
}

fn audit(change: LinkChange) -> LinkAuditRecord {
    LinkAuditRecord { actor: "creator-7".into(), change, detail: serde_json::json!({}), at: Utc::now() }
}

#[tokio::test]
async fn another_owners_link_is_missing_to_a_creator() {
    let db = TestDatabase::migrated().await;
    let pool = PgPoolOptions::new().max_connections(4).connect(&db.url).await.expect("pool");
    // Owners are stored keys (links.owner_key_id references api_keys).
    sqlx::raw_sql(
        "INSERT INTO api_keys (id, name, role, secret_sha256) OVERRIDING SYSTEM VALUE
         VALUES (7, 'creator-7', 'creator', sha256('seven')), (8, 'creator-8', 'creator', sha256('eight'))",
    )
    .execute(&pool)
    .await
    .expect("keys");
    let links = PgLinkStore::new(pool.clone());
    let admin = PgLinkAdminStore::new(pool);
    let (mine, theirs) = (link("mine-link", 7), link("theirs-link", 8));
    links.create(&mine).await.expect("create");
    links.create(&theirs).await.expect("create");

    let disable = LinkEdit { disabled: Some(true), ..LinkEdit::default() };
    let other = &theirs.phrase;
    assert_eq!(admin.edit(other, Some(7), &disable, &audit(LinkChange::Disabled)).await.expect("edit"), None);
    assert_eq!(admin.erase_visits(other, Some(7), &audit(LinkChange::VisitsErased)).await.expect("erase"), None);
    let quarantine = Utc::now() + chrono::TimeDelta::days(30);
    assert!(!admin.delete(other, Some(7), quarantine, &audit(LinkChange::Deleted)).await.expect("delete"));
    assert_eq!(db.count("audit_log").await, 0);
    assert_eq!(db.scalar("SELECT count(*) FROM links WHERE disabled_at IS NOT NULL").await, 0);

    let page = admin.list(&ListLinksQuery::default(), Some(7), Utc::now()).await.expect("list");
    let phrases: Vec<&str> = page.links.iter().map(|l| l.link.phrase.as_str()).collect();
    assert_eq!((phrases, page.total_items), (vec!["mine-link"], 1));
    assert_eq!(admin.list(&ListLinksQuery::default(), None, Utc::now()).await.expect("list").total_items, 2);

    let edited = admin.edit(&mine.phrase, Some(7), &disable, &audit(LinkChange::Disabled)).await.expect("edit");
    assert!(edited.expect("mine").disabled);
    assert!(admin.delete(&mine.phrase, Some(7), quarantine, &audit(LinkChange::Deleted)).await.expect("delete"));
    assert!(admin.is_deleted(&mine.phrase, Some(7)).await.expect("tombstone"));
    assert!(admin.is_deleted(&mine.phrase, None).await.expect("tombstone"), "admins see every tombstone");
    assert!(!admin.is_deleted(&mine.phrase, Some(8)).await.expect("tombstone"), "another owner's: missing");
    assert_eq!(db.count("audit_log").await, 2);
}
