//! The `offndat-worker` binary as a process: clean exit on SIGTERM, nothing lost
//! or doubled across SIGKILL and restart, one clear line on a bad start.

use offndat_test_support::{AmqpNamespace, TestDatabase, eventually};
use uuid::Uuid;

use crate::helpers::{DEADLINE, Publisher, insert_link, process_url, wait_ready, worker_process};

const ALL_VISITS: &str = "SELECT COALESCE(SUM(total_visits), 0)::bigint FROM visit_summaries";

#[tokio::test]
async fn sigterm_settles_the_batch_in_hand_and_exits_zero() {
    let db = TestDatabase::migrated().await;
    let namespace = AmqpNamespace::new();
    let link = insert_link(&db).await;
    let publisher = Publisher::new(&namespace).await;
    let client = reqwest::Client::new();
    let mut worker = worker_process(&db, &namespace, &[("OFFNDAT_WORKER_BATCH_SIZE", "10")]);
    worker.ready("address", &client).await;

    let messages: Vec<_> = (0..300).map(|_| (Uuid::now_v7(), vec![(link, 1)])).collect();
    publisher.visited_many(&messages).await;
    eventually(DEADLINE, "consuming", || async {
        let n = db.count("inbox").await;
        if n > 0 { Ok(()) } else { Err(n.to_string()) }
    })
    .await;
    worker.signal("TERM");
    let code = worker.exit_code().await;
    assert_eq!(code, Some(0), "output:\n{}", worker.output());

    // Whatever was acknowledged is applied, whatever was not is back in the queue.
    let applied = db.count("inbox").await;
    let ready = i64::from(publisher.ready_count(&namespace.topology().link_visited_queue).await);
    assert_eq!(applied + ready, 300, "applied {applied} + waiting {ready}");
    assert_eq!(db.scalar(ALL_VISITS).await, applied, "one visit per applied message");
}

#[tokio::test]
async fn a_worker_killed_mid_stream_and_restarted_counts_every_visit_exactly_once() {
    let db = TestDatabase::migrated().await;
    let namespace = AmqpNamespace::new();
    let links = [insert_link(&db).await, insert_link(&db).await, insert_link(&db).await];
    let publisher = Publisher::new(&namespace).await;
    let messages: Vec<_> = (0..3000u32)
        .map(|i| (Uuid::now_v7(), vec![(links[i as usize % 3], 1 + i % 4), (links[(i as usize + 1) % 3], 1)]))
        .collect();
    let expected: i64 = messages.iter().flat_map(|(_, v)| v.iter().map(|(_, n)| i64::from(*n))).sum();
    publisher.visited_many(&messages).await;

    // Small batches, so it is still busy when it dies.
    let small = [("OFFNDAT_WORKER_BATCH_SIZE", "5"), ("OFFNDAT_WORKER_PREFETCH", "20")];
    let mut first = worker_process(&db, &namespace, &small);
    eventually(DEADLINE, "first worker consuming", || async {
        let n = db.count("inbox").await;
        if n >= 100 { Ok(()) } else { Err(n.to_string()) }
    })
    .await;
    first.signal("KILL");
    assert_eq!(first.exit_code().await, None, "killed by a signal");
    let at_kill = db.count("inbox").await;
    assert!(at_kill < 3000, "the worker was killed mid-stream (applied {at_kill})");

    let second = worker_process(&db, &namespace, &[]);
    eventually(DEADLINE, "every visit counted", || async {
        let (total, inbox) = (db.scalar(ALL_VISITS).await, db.count("inbox").await);
        if total == expected && inbox == 3000 {
            Ok(())
        } else {
            Err(format!("total {total}/{expected}, inbox {inbox}"))
        }
    })
    .await;
    for link in links {
        let per_link: i64 =
            messages.iter().flat_map(|(_, v)| v.iter().filter(|(id, _)| *id == link).map(|(_, n)| i64::from(*n))).sum();
        assert_eq!(crate::helpers::total(&db, link).await, per_link);
    }
    assert_eq!(publisher.ready_count(&namespace.topology().link_visited_queue).await, 0);
    second.stop().await;
}

#[tokio::test]
async fn on_a_database_without_the_schema_it_is_live_not_ready_until_migrations_are_applied() {
    // Not migrated: the worker creates the database but must not migrate it.
    let db = TestDatabase::new();
    let namespace = AmqpNamespace::new();
    let worker = worker_process(&db, &namespace, &[]);
    let client = reqwest::Client::new();
    let ready_url = process_url(&worker, "/health/ready").await;
    let live = client.get(process_url(&worker, "/health/live").await).send().await.expect("live");
    assert_eq!(live.status(), 200);
    let waiting = eventually(DEADLINE, "the worker reports the missing migrations", || async {
        let response = client.get(&ready_url).send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
        let problem = body["postgres"].as_str().unwrap_or_default().to_owned();
        if status == 503 && problem.starts_with("waiting for") { Ok(body) } else { Err(format!("{status} {body}")) }
    })
    .await;
    let migrations = offndat_infrastructure::postgres::MIGRATOR.iter().count();
    assert_eq!(waiting["status"], "not ready");
    assert!(
        waiting["postgres"].as_str().expect("text").starts_with(&format!(
            "waiting for {migrations} migration(s) (the API applies them, or `offndat-api migrate`), first "
        )),
        "{waiting}"
    );

    let mut conn = db.connect().await;
    offndat_infrastructure::postgres::MIGRATOR.run(&mut conn).await.expect("migrate");
    wait_ready(&client, &ready_url).await;
    worker.stop().await;
}

#[tokio::test]
async fn sigterm_while_waiting_for_the_schema_exits_zero() {
    let db = TestDatabase::new();
    let namespace = AmqpNamespace::new();
    let mut worker = worker_process(&db, &namespace, &[]);
    let client = reqwest::Client::new();
    let ready_url = process_url(&worker, "/health/ready").await;
    eventually(DEADLINE, "not ready", || async {
        let response = client.get(&ready_url).send().await.map_err(|e| e.to_string())?;
        if response.status() == 503 { Ok(()) } else { Err(response.status().to_string()) }
    })
    .await;
    worker.signal("TERM");
    assert_eq!(worker.exit_code().await, Some(0), "output:\n{}", worker.output());
}
