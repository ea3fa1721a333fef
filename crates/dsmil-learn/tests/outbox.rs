//! Never lose a record: PostgreSQL becomes unreachable in the middle of a 20,000-record load
//! and comes back; every record ends up stored exactly once, in order.
//!
//! The outage is made by a TCP proxy between the store and PostgreSQL that the test switches
//! off (dropping every open connection and refusing new ones) and on again, so other tests
//! sharing the server are not disturbed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::*;
use dsmil_learn::store::{PerformanceStore, PgStore, PgStoreConfig, ResilientStore};
use sqlx::Row;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A switchable TCP proxy to `target`.
struct Proxy {
    addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let (up2, cut2) = (Arc::clone(&up), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(client); // refused: closed at once
                    continue;
                }
                let target = target.clone();
                let mut cut_rx = cut2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Self { addr, up, cut }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_mid_load_loses_nothing_and_duplicates_nothing() {
    let Some(url) = database_url() else { return };
    let parsed: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let target = format!("{}:{}", parsed.get_host(), parsed.get_port());
    let proxy = Proxy::start(target.clone()).await;
    let proxied = url.replacen(&target, &proxy.addr.to_string(), 1);
    assert_ne!(proxied, url, "the URL must name host:port");

    let mut config = PgStoreConfig::new(proxied);
    config.schema = schema_name();
    config.acquire_timeout = Duration::from_millis(500);
    let pg = PgStore::connect(config.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let outbox_path = dir.path().join("outbox.sqlite");
    let store = ResilientStore::open(Arc::new(pg.clone()), &outbox_path)
        .await
        .unwrap();

    let mut rng = Rng(31);
    let records = many(&mut rng, 20_000, &["a", "b", "c", "d", "e"]);
    let mut queued_seen = false;
    for (i, chunk) in records.chunks(250).enumerate() {
        if i == 30 {
            proxy.down();
        }
        if i == 60 {
            proxy.up();
        }
        // Every call is accepted, outage or not.
        assert_eq!(
            store.insert(chunk).await.unwrap(),
            chunk.len() as u64,
            "chunk {i}"
        );
        if (30..60).contains(&i) {
            queued_seen |= store.pending().await.unwrap() > 0;
        }
    }
    assert!(
        queued_seen,
        "records were queued in the outbox during the outage"
    );
    store.drain(Duration::from_secs(120)).await.unwrap();
    assert!(store.replayed() > 0);
    assert_eq!(store.pending().await.unwrap(), 0);

    // Check directly (not through the proxy): each record once, in submission order.
    let mut direct = PgStoreConfig::new(url.clone());
    direct.schema = config.schema.clone();
    let check = PgStore::connect(direct).await.unwrap();
    assert_eq!(check.count().await.unwrap(), 20_000);
    let pool = sqlx::postgres::PgPool::connect(&url).await.unwrap();
    let rows = sqlx::query(&format!(
        "SELECT record_id FROM \"{}\".agent_performance_metrics ORDER BY id",
        config.schema
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    let stored: Vec<uuid::Uuid> = rows.iter().map(|r| r.get(0)).collect();
    let sent: Vec<uuid::Uuid> = records.iter().map(|r| r.record_id).collect();
    assert_eq!(
        stored, sent,
        "stored exactly once each, in the order they were accepted"
    );
    check.drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_left_in_the_outbox_are_replayed_after_a_restart() {
    let Some(url) = database_url() else { return };
    let parsed: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let target = format!("{}:{}", parsed.get_host(), parsed.get_port());
    let proxy = Proxy::start(target.clone()).await;
    let mut config = PgStoreConfig::new(url.replacen(&target, &proxy.addr.to_string(), 1));
    config.schema = schema_name();
    config.acquire_timeout = Duration::from_millis(300);
    let pg = PgStore::connect(config.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let outbox_path = dir.path().join("outbox.sqlite");
    let mut rng = Rng(32);
    let records = many(&mut rng, 500, &["a"]);
    {
        proxy.down();
        let store = ResilientStore::open(Arc::new(pg.clone()), &outbox_path)
            .await
            .unwrap();
        store.insert(&records).await.unwrap();
        assert_eq!(store.pending().await.unwrap(), 500);
        // The process "stops" here with PostgreSQL still away.
    }
    proxy.up();
    let store = ResilientStore::open(Arc::new(pg.clone()), &outbox_path)
        .await
        .unwrap();
    store.drain(Duration::from_secs(60)).await.unwrap();
    assert_eq!(store.count().await.unwrap(), 500);
    pg.drop_schema().await.unwrap();
}
