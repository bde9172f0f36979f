//! Single flight: concurrent loads of one key share one execution.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

/// Coalesces concurrent loads of the same key: the first caller runs the load,
/// the others wait for its result. If the first caller is cancelled, a waiter
/// takes over, so a load is never lost.
pub struct SingleFlight<K, V> {
    flights: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
}

impl<K: Hash + Eq + Clone, V: Clone> Default for SingleFlight<K, V> {
    fn default() -> Self {
        Self { flights: Mutex::new(HashMap::new()) }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> SingleFlight<K, V> {
    /// Runs `load` for `key` unless a load of `key` is already running, in which
    /// case it waits for that one's result. The second value is true for the
    /// caller whose `load` ran.
    pub async fn run<F, Fut>(&self, key: K, load: F) -> (V, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let cell = {
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            flights.entry(key.clone()).or_default().clone()
        };
        // Forgets the flight however this call ends, cancellation included: a
        // first caller dropped mid-load (a client gone away) must not leave its
        // entry behind for good, or a flood of unknown phrases grows the map.
        let guard = Landing { flights: &self.flights, key, cell };
        let mut ran = false;
        let value = guard
            .cell
            .get_or_init(|| {
                ran = true;
                load()
            })
            .await
            .clone();
        drop(guard);
        (value, ran)
    }

    /// Callers waiting on the flight of `key` (the one running its load included).
    #[cfg(test)]
    pub fn callers(&self, key: &K) -> usize {
        let flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        flights.get(key).map_or(0, |cell| Arc::strong_count(cell) - 1)
    }

    /// Loads in flight right now.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.flights.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// One caller's hold on a flight; dropping it removes the flight from the map
/// once it has a value, or when no other caller is left to take the load over.
struct Landing<'a, K: Hash + Eq, V> {
    flights: &'a Mutex<HashMap<K, Arc<OnceCell<V>>>>,
    key: K,
    cell: Arc<OnceCell<V>>,
}

impl<K: Hash + Eq, V> Drop for Landing<'_, K, V> {
    fn drop(&mut self) {
        let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        // Clones of the cell are made under this lock: two references are the
        // map's and this caller's, so nobody else waits on it.
        let ours = flights.get(&self.key).is_some_and(|current| Arc::ptr_eq(current, &self.cell));
        if ours && (self.cell.initialized() || Arc::strong_count(&self.cell) == 2) {
            flights.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_loads_of_one_key_run_once() {
        let flights = Arc::new(SingleFlight::<String, usize>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (flights, runs, mut gate) = (flights.clone(), runs.clone(), gate_rx.clone());
            tasks.push(tokio::spawn(async move {
                flights
                    .run("k".to_owned(), || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        let _ = gate.wait_for(|open| *open).await;
                        42
                    })
                    .await
            }));
        }
        // Every task is waiting on the one load before it may finish.
        while flights.callers(&"k".to_owned()) < 50 || runs.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        gate_tx.send(true).expect("open");
        let mut ran = 0;
        for task in tasks {
            let (value, did_run) = task.await.expect("task");
            assert_eq!(value, 42);
            ran += usize::from(did_run);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(ran, 1);
        assert_eq!(flights.in_flight(), 0, "finished flights are forgotten");
    }

    #[tokio::test]
    async fn later_loads_run_again() {
        let flights = SingleFlight::<&str, u32>::default();
        assert_eq!(flights.run("k", || async { 1 }).await, (1, true));
        assert_eq!(flights.run("k", || async { 2 }).await, (2, true));
    }

    #[tokio::test]
    async fn a_first_caller_cancelled_mid_load_leaves_no_entry() {
        let flights = Arc::new(SingleFlight::<&str, u32>::default());
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let first = tokio::spawn({
            let flights = flights.clone();
            async move {
                flights
                    .run("unknown", || async move {
                        let _ = started_tx.send(());
                        // A lookup that never answers: the caller goes away first.
                        std::future::pending::<u32>().await
                    })
                    .await
            }
        });
        started_rx.await.expect("the load started");
        assert_eq!(flights.in_flight(), 1);
        first.abort();
        assert!(first.await.expect_err("cancelled").is_cancelled());
        assert_eq!(flights.in_flight(), 0, "the cancelled flight is forgotten");
        assert_eq!(flights.run("unknown", || async { 7 }).await, (7, true), "and the next caller loads afresh");
    }

    #[tokio::test]
    async fn a_waiter_takes_over_when_the_first_caller_is_cancelled() {
        let flights = Arc::new(SingleFlight::<&str, u32>::default());
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let first = tokio::spawn({
            let flights = flights.clone();
            async move {
                flights
                    .run("k", || async move {
                        let _ = started_tx.send(());
                        std::future::pending::<u32>().await
                    })
                    .await
            }
        });
        started_rx.await.expect("the load started");
        let (gate_tx, gate_rx) = tokio::sync::oneshot::channel::<()>();
        let second = tokio::spawn({
            let flights = flights.clone();
            async move {
                flights
                    .run("k", || async move {
                        let _ = gate_rx.await;
                        9
                    })
                    .await
            }
        });
        while flights.callers(&"k") < 2 {
            tokio::task::yield_now().await;
        }
        first.abort();
        assert!(first.await.expect_err("cancelled").is_cancelled());
        assert_eq!(flights.in_flight(), 1, "kept for the waiter");
        gate_tx.send(()).expect("open");
        assert_eq!(second.await.expect("second"), (9, true), "the waiter ran the load");
        assert_eq!(flights.in_flight(), 0);
    }
}
