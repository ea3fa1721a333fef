//! The nats-server launcher against real processes: a three-server JetStream cluster with a
//! replicated stream survives a SIGKILLed server and catches it up after a restart; strangers
//! (wrong token, no token, the route credentials, a rogue server trying to route in) are
//! refused; TLS admits a client that trusts the CA and refuses a plain one; `sync_always`
//! reaches the servers; detached servers are stopped by their recorded pid.
//!
//! Each test skips with a note when no nats-server ≥ 2.10 is found (`DSMIL_TEST_NATS_SERVER`,
//! else `PATH`), and fails instead when `DSMIL_REQUIRE_SERVICES=1`. Three clusters in all, one
//! per test, started side by side.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use async_nats::{ConnectErrorKind, ConnectOptions};
use dsmil_cluster::nats_server::{
    BINARY_VAR, NatsBinary, NatsCluster, NatsClusterSpec, RecordedStop, is_our_server,
    stop_recorded, write_test_tls,
};
use dsmil_core::testenv::{NATS_SERVER_VAR, REQUIRE_VAR};
use futures_util::StreamExt as _;
use tokio::task::block_in_place;

/// The binary to test with; `None` (the test skips) when there is none and services are not
/// required.
fn binary() -> Option<NatsBinary> {
    match NatsBinary::find() {
        Ok(binary) => Some(binary),
        Err(err) if std::env::var(REQUIRE_VAR).is_ok_and(|v| v.trim() == "1") => {
            panic!("{REQUIRE_VAR}=1 but no usable nats-server: {err}")
        }
        Err(err) => {
            eprintln!("skipping: {err}");
            None
        }
    }
}

/// A cluster spec under `root` using `binary`.
fn spec(root: &Path, binary: &NatsBinary) -> NatsClusterSpec {
    let mut spec = NatsClusterSpec::new(root);
    spec.binary = Some(binary.path.clone());
    spec
}

fn start(spec: NatsClusterSpec) -> NatsCluster {
    block_in_place(|| NatsCluster::start(spec)).unwrap_or_else(|e| panic!("{e}"))
}

async fn connect(urls: &[String], token: &str) -> async_nats::Client {
    ConnectOptions::with_token(token.to_owned())
        .connection_timeout(Duration::from_secs(10))
        .connect(urls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {urls:?}: {e}"))
}

/// An R3 file stream over `<name>.>`.
async fn create_r3_stream(js: &jetstream::Context, name: &str) -> stream::Stream {
    js.create_stream(stream::Config {
        name: name.to_owned(),
        subjects: vec![format!("{name}.>")],
        num_replicas: 3,
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("creating stream {name}: {e}"))
}

/// Publishes `m<i>` to `<stream>.msgs` for each `i`, awaiting each ack, and checks that the
/// acks number the messages in order.
async fn publish(js: &jetstream::Context, stream: &str, range: std::ops::Range<u64>) {
    for i in range {
        let ack = js
            .publish(format!("{stream}.msgs"), format!("m{i}").into())
            .await
            .unwrap_or_else(|e| panic!("publishing m{i}: {e}"))
            .await
            .unwrap_or_else(|e| panic!("ack of m{i}: {e}"));
        assert_eq!(ack.sequence, i + 1, "ack of m{i}");
        assert!(!ack.duplicate);
    }
}

/// What a client with these options gets from `url`: the connect error, which must be a
/// refusal.
async fn refused(options: ConnectOptions, url: &str) -> async_nats::ConnectError {
    match options
        .connection_timeout(Duration::from_secs(10))
        .connect(url)
        .await
    {
        Ok(client) => panic!(
            "{url} accepted a client it should refuse: {:?}",
            client.server_info()
        ),
        Err(err) => err,
    }
}

/// A process killed when dropped (the rogue server of a test).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (bounded, so a broken server fails the test instead of hanging it) until `path`
/// contains `needle`.
fn wait_for_log(path: &Path, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never said {needle:?}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The remote server names server `index` has routes to.
fn route_peers(cluster: &NatsCluster, index: usize) -> BTreeSet<String> {
    let routez = cluster.monitor(index, "/routez").unwrap();
    routez["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|route| route["remote_name"].as_str().unwrap().to_owned())
        .collect()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_launcher_reads_the_variable_xtask_exports() {
    assert_eq!(BINARY_VAR, NATS_SERVER_VAR);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_r3_stream_survives_a_killed_server_and_strangers_are_refused() {
    let Some(binary) = binary() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start(spec(dir.path(), &binary));
    assert_eq!(cluster.server_count(), 3);

    // The token file holds exactly the token, readable by its owner only; so do the configs.
    let token = cluster.token().to_owned();
    assert_eq!(token.len(), 64);
    assert_eq!(fs::read_to_string(cluster.token_file()).unwrap(), token);
    assert_eq!(mode(cluster.token_file()), 0o600);
    for i in 0..3 {
        assert_eq!(mode(cluster.config_file(i).unwrap()), 0o600);
    }
    let route = cluster.route_credentials().clone();
    assert_ne!(route.password, token);
    assert!(!route.password.contains(&token) && !token.contains(&route.password));

    let client = connect(&cluster.urls(), &token).await;
    let mut js = jetstream::new(client.clone());
    js.set_timeout(Duration::from_secs(60)); // A hang guard on a loaded machine, not a speed check.
    let mut stream = create_r3_stream(&js, "launcher").await;
    publish(&js, "launcher", 0..100).await;

    // Kill a follower of the stream that the client is not connected to: the leader and the
    // other follower are a quorum, so every publish is still acknowledged.
    let leader = stream
        .info()
        .await
        .unwrap()
        .cluster
        .clone()
        .unwrap()
        .leader
        .unwrap();
    let connected = client.server_info().server_name;
    let victim = (0..3)
        .find(|&i| {
            let name = cluster.server_name(i).unwrap();
            name != leader && name != connected
        })
        .unwrap();
    let victim_pid = cluster.pid(victim).unwrap();
    block_in_place(|| cluster.kill(victim)).unwrap();
    assert_eq!(cluster.pid(victim), None);
    assert!(!cluster.is_running(victim));
    assert!(!Path::new(&format!("/proc/{victim_pid}")).exists());
    publish(&js, "launcher", 100..200).await;

    // Back on the same ports and store, it catches up: its own replica holds all 200.
    block_in_place(|| cluster.restart(victim)).unwrap();
    assert!(cluster.is_running(victim));
    // Healthy means it rejoined; the stream's replica catches up right after (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    let jsz = loop {
        let jsz = cluster
            .monitor(victim, "/jsz?accounts=true&streams=true")
            .unwrap();
        let messages = &jsz["account_details"][0]["stream_detail"][0]["state"]["messages"];
        if messages == 200 || Instant::now() > deadline {
            break jsz;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let detail = &jsz["account_details"][0]["stream_detail"][0];
    assert_eq!(detail["name"], "launcher", "{jsz}");
    assert_eq!(detail["state"]["messages"], 200, "{jsz}");
    assert_eq!(detail["state"]["last_seq"], 200, "{jsz}");
    for seq in 1..=200u64 {
        let message = stream.get_raw_message(seq).await.unwrap();
        assert_eq!(message.payload, format!("m{}", seq - 1).as_bytes());
    }

    // Strangers are refused, whatever they try.
    let url = cluster.url(0).unwrap();
    let cases = [
        ("a wrong token", ConnectOptions::with_token("0".repeat(64))),
        ("no credentials", ConnectOptions::new()),
        (
            "the route password as token",
            ConnectOptions::with_token(route.password.clone()),
        ),
        (
            "the route user and password",
            ConnectOptions::with_user_and_password(route.user.clone(), route.password.clone()),
        ),
    ];
    for (what, options) in cases {
        let err = refused(options, &url).await;
        assert_eq!(
            err.kind(),
            ConnectErrorKind::AuthorizationViolation,
            "{what}: {err}"
        );
        assert!(err.to_string().contains("authorization"), "{what}: {err}");
    }

    // A rogue server routing in with the client token as route password is refused, and the
    // cluster keeps routing only among its own servers.
    let rogue_dir = dir.path().join("rogue");
    fs::create_dir_all(&rogue_dir).unwrap();
    let rogue_conf = rogue_dir.join("rogue.conf");
    let rogue_log = rogue_dir.join("rogue.log");
    let target = cluster.ports(0).unwrap().route;
    fs::write(
        &rogue_conf,
        format!(
            "server_name: rogue\nlisten: \"127.0.0.1:-1\"\ncluster {{\n  name: \"dsmil-test\"\n  \
             listen: \"127.0.0.1:-1\"\n  routes: [\"nats-route://{}:{token}@127.0.0.1:{target}\"]\n}}\n",
            route.user
        ),
    )
    .unwrap();
    let log = fs::File::create(&rogue_log).unwrap();
    let _rogue = KillOnDrop(
        Command::new(&binary.path)
            .arg("-c")
            .arg(&rogue_conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_for_log(&rogue_log, "Authorization Violation");
    let names = |list: &[usize]| -> BTreeSet<String> {
        list.iter()
            .map(|&i| cluster.server_name(i).unwrap().to_owned())
            .collect()
    };
    assert_eq!(route_peers(&cluster, 0), names(&[1, 2]));

    // Neither secret ever reaches a log.
    for i in 0..3 {
        let log = fs::read_to_string(cluster.log_file(i).unwrap()).unwrap();
        assert!(
            !log.contains(&token),
            "token in {}",
            cluster.log_file(i).unwrap().display()
        );
        assert!(
            !log.contains(&route.password),
            "route password in the log of n{i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_admits_a_client_trusting_the_ca_and_refuses_plain_ones() {
    let Some(binary) = binary() else { return };
    let dir = tempfile::tempdir().unwrap();
    let tls = block_in_place(|| write_test_tls(&dir.path().join("tls"))).unwrap();
    let mut spec = spec(&dir.path().join("cluster"), &binary);
    spec.tls = Some(tls.clone());
    let mut cluster = start(spec);
    let token = cluster.token().to_owned();

    let client = ConnectOptions::with_token(token.clone())
        .add_root_certificates(tls.ca.clone())
        .require_tls(true)
        .connection_timeout(Duration::from_secs(10))
        .connect(cluster.urls())
        .await
        .unwrap_or_else(|e| panic!("TLS client trusting the CA: {e}"));
    let mut sub = client.subscribe("tls.check").await.unwrap();
    client
        .publish("tls.check", "over tls".into())
        .await
        .unwrap();
    let got = sub.next().await.unwrap();
    assert_eq!(got.payload, "over tls".as_bytes());
    let account = jetstream::new(client).query_account().await.unwrap();
    assert_eq!(account.streams, 0);

    // A client that does not trust the CA fails the handshake.
    let url = cluster.url(0).unwrap();
    let err = refused(ConnectOptions::with_token(token.clone()), &url).await;
    // async-nats reports a rustls verification failure during the handshake as an I/O error.
    assert!(
        matches!(err.kind(), ConnectErrorKind::Tls | ConnectErrorKind::Io)
            && err.to_string().contains("UnknownIssuer"),
        "{err}"
    );

    // A plain-text client gets the INFO saying TLS is required, and nothing after its CONNECT.
    let mut plain = TcpStream::connect(("127.0.0.1", cluster.ports(0).unwrap().client)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut info = [0u8; 4096];
    let n = plain.read(&mut info).unwrap();
    let info = String::from_utf8_lossy(&info[..n]).into_owned();
    assert!(
        info.starts_with("INFO ") && info.contains("\"tls_required\":true"),
        "{info}"
    );
    plain
        .write_all(
            format!("CONNECT {{\"auth_token\":\"{token}\",\"verbose\":true}}\r\nPING\r\n")
                .as_bytes(),
        )
        .unwrap();
    let mut rest = Vec::new();
    // The server closes the connection (or it resets): either way it served nothing.
    let _ = plain.read_to_end(&mut rest);
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        !rest.contains("PONG") && !rest.contains("+OK"),
        "plain client was served: {rest}"
    );

    // SIGTERM stops every server.
    let pids: Vec<u32> = (0..3).map(|i| cluster.pid(i).unwrap()).collect();
    block_in_place(|| cluster.stop_all()).unwrap();
    for (i, pid) in pids.into_iter().enumerate() {
        assert_eq!(cluster.pid(i), None);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "n{i} (pid {pid}) still exists"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_always_reaches_the_servers_and_detached_servers_stop_by_pid() {
    let Some(binary) = binary() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(dir.path(), &binary);
    spec.sync_always = true;
    let cluster = start(spec);
    for i in 0..3 {
        let config = fs::read_to_string(cluster.config_file(i).unwrap()).unwrap();
        assert!(config.contains("  sync_interval: always\n"), "{config}");
        let varz = cluster.monitor(i, "/varz").unwrap();
        assert_eq!(
            varz["jetstream"]["config"]["sync_always"], true,
            "n{i}: {varz}"
        );
    }
    let client = connect(&cluster.urls(), cluster.token()).await;
    let mut js = jetstream::new(client);
    // Every write fsync'd on three servers sharing two busy cores: acks may take longer than
    // the client's 5 s default; this test is about what reaches the disks, not how fast.
    js.set_timeout(Duration::from_secs(60));
    create_r3_stream(&js, "synced").await;
    publish(&js, "synced", 0..20).await;

    // Detached servers keep running; a pid is only signalled while it is one of ours.
    let detached = cluster.detach();
    assert_eq!(detached.servers.len(), 3);
    assert!(detached.sync_always);
    for server in &detached.servers {
        assert!(server.is_running(), "{}", server.name);
        block_in_place(|| server.check_health()).unwrap();
        let other_config = dir.path().join("elsewhere.conf");
        let outcome = stop_recorded(server.pid, &other_config, Duration::from_secs(10)).unwrap();
        assert_eq!(outcome, RecordedStop::NotOurs);
        assert!(server.is_running(), "{} was signalled", server.name);
    }
    block_in_place(|| detached.stop(Duration::from_secs(10))).unwrap();
    for server in &detached.servers {
        assert!(
            !is_our_server(server.pid, &server.config_file),
            "{}",
            server.name
        );
        let again =
            stop_recorded(server.pid, &server.config_file, Duration::from_secs(10)).unwrap();
        assert_ne!(again, RecordedStop::Stopped);
    }
}
