//! A `BulkConnection` shrinks its buffers on release without losing what is
//! still to be sent: a transaction dropped uncommitted on it is still rolled
//! back, and the connection serves the next caller.

use offndat_infrastructure::postgres::BulkConnection;
use offndat_test_support::TestDatabase;
use sqlx::Connection;
use sqlx::postgres::PgPoolOptions;

#[tokio::test]
async fn a_dropped_transaction_is_rolled_back_after_the_buffers_shrink() {
    let db = TestDatabase::migrated().await;
    // One connection, so the second acquire gets the shrunk one.
    let pool = PgPoolOptions::new().max_connections(1).connect(&db.url).await.expect("pool");
    sqlx::query("CREATE TABLE bulk_probe (v text)").execute(&pool).await.expect("table");
    let big = "x".repeat(4 * 1024 * 1024);

    {
        let mut conn = BulkConnection::acquire(&pool).await.expect("acquire");
        let mut tx = conn.begin().await.expect("begin");
        sqlx::query("INSERT INTO bulk_probe VALUES ($1)").bind(&big).execute(&mut *tx).await.expect("insert");
        let read: String = sqlx::query_scalar("SELECT v FROM bulk_probe").fetch_one(&mut *tx).await.expect("read");
        assert_eq!(read.len(), big.len(), "4 MiB each way through the buffers");
        // Dropped without commit: the ROLLBACK is queued, then the buffers shrink.
    }

    let mut conn = BulkConnection::acquire(&pool).await.expect("acquire again");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM bulk_probe").fetch_one(&mut *conn).await.expect("count");
    assert_eq!(rows, 0, "the dropped transaction was rolled back");
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query("INSERT INTO bulk_probe VALUES ($1)").bind(&big).execute(&mut *tx).await.expect("insert");
    tx.commit().await.expect("commit");
    drop(conn);
    let length: i32 = sqlx::query_scalar("SELECT length(v) FROM bulk_probe").fetch_one(&pool).await.expect("length");
    assert_eq!(length as usize, big.len());
    pool.close().await;
}
