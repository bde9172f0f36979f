//! A PostgreSQL database per test, dropped when the test ends.

use sqlx::{Connection, PgConnection};

/// The PostgreSQL server tests create their databases on.
pub fn postgres_server() -> String {
    std::env::var("OFFNDAT_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A database of one test's own (`offndat_test_<uuid>`), dropped on `Drop`.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl Default for TestDatabase {
    fn default() -> Self {
        Self::new()
    }
}

impl TestDatabase {
    /// A fresh name; nothing is created yet (the app under test creates it).
    pub fn new() -> Self {
        let name = format!("offndat_test_{}", uuid::Uuid::new_v4().simple());
        let url = format!("{}/{name}", postgres_server());
        Self { name, url }
    }

    /// A fresh database, created and migrated.
    pub async fn migrated() -> Self {
        let db = Self::new();
        let mut admin = PgConnection::connect(&format!("{}/postgres", postgres_server())).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {}", db.name))).execute(&mut admin).await.unwrap();
        let mut conn = db.connect().await;
        offndat_infrastructure::postgres::MIGRATOR.run(&mut conn).await.unwrap();
        db
    }

    /// The same database reached through `address` (a proxy) instead.
    pub fn url_via(&self, address: std::net::SocketAddr) -> String {
        format!("postgres://postgres@{address}/{}", self.name)
    }

    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.unwrap()
    }

    /// `SELECT count(*)` of a table.
    pub async fn count(&self, table: &str) -> i64 {
        self.scalar(&format!("SELECT count(*) FROM {table}")).await
    }

    /// A query returning one `bigint`.
    pub async fn scalar(&self, query: &str) -> i64 {
        let mut conn = self.connect().await;
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(query.to_owned())).fetch_one(&mut conn).await.unwrap()
    }

    /// A query returning at most one row of one `text` value: `None` for no row
    /// or `NULL`.
    pub async fn text(&self, query: &str) -> Option<String> {
        let mut conn = self.connect().await;
        sqlx::query_scalar::<_, Option<String>>(sqlx::AssertSqlSafe(query.to_owned()))
            .fetch_optional(&mut conn)
            .await
            .unwrap()
            .flatten()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let server = postgres_server();
        // Drop runs inside the test's runtime; a thread of its own may block.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&format!("{server}/postgres")).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut conn).await;
                }
            });
        })
        .join();
    }
}
