//! The `[cluster]` credentials other than a token, against a real nats-server that knows a
//! user with a password and a user nkey (generated here with the `nkeys` crate async-nats
//! itself uses): each connects; a wrong password and an unknown nkey are refused naming the
//! setting to check, and the secret appears in no error.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dsmil_cluster::nats_server::{MIN_VERSION, NatsBinary};
use dsmil_cluster::{ClusterConfig, ClusterError, connect};
use dsmil_core::testenv::REQUIRE_VAR;

/// A standalone nats-server; killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a server on loopback knowing user `dsmil` (password `password`) and the user nkey
/// `nkey`; its URL.
fn server(dir: &std::path::Path, password: &str, nkey: &str) -> Option<(Server, String)> {
    let binary = match NatsBinary::find() {
        Ok(b) => b,
        Err(err) => {
            assert!(
                std::env::var(REQUIRE_VAR).as_deref() != Ok("1"),
                "{REQUIRE_VAR}=1 but no nats-server ≥ {MIN_VERSION:?}: {err}"
            );
            return None;
        }
    };
    let port = free_port();
    let config = dir.join("nats.conf");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\njetstream {{ store_dir: {:?} }}\n\
             authorization {{ users = [ {{ user: dsmil, password: {password:?} }}, {{ nkey: {nkey} }} ] }}\n",
            dir.join("store").display().to_string()
        ),
    )
    .unwrap();
    let child = Command::new(&binary.path)
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((Server(child), format!("nats://127.0.0.1:{port}")))
}

fn base(url: &str) -> ClusterConfig {
    ClusterConfig {
        nats: vec![url.to_owned()],
        node_id: Some("cred-node".into()),
        ..ClusterConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_with_a_password_file_and_an_nkey_seed_file_connect_and_wrong_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let user_key = nkeys::KeyPair::new_user();
    let Some((_server, url)) = server(dir.path(), "s3cret-pw", &user_key.public_key()) else {
        return;
    };
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };

    // user + password_file.
    let mut config = base(&url);
    config.user = Some("dsmil".into());
    config.password_file = Some(write("password", "s3cret-pw\n"));
    config.validate().unwrap();
    let client = connect(&config, "cred-node").await.unwrap();
    client.flush().await.unwrap();

    config.password_file = Some(write("wrong-password", "not-it\n"));
    refused(&config, "password_file", &["not-it", "s3cret"]).await;

    // nkey_seed_file.
    let mut config = base(&url);
    config.nkey_seed_file = Some(write("user.nk", &user_key.seed().unwrap()));
    config.validate().unwrap();
    let client = connect(&config, "cred-node").await.unwrap();
    client.flush().await.unwrap();

    let stranger = nkeys::KeyPair::new_user();
    config.nkey_seed_file = Some(write("stranger.nk", &stranger.seed().unwrap()));
    refused(&config, "nkey_seed_file", &[&stranger.seed().unwrap()]).await;
}

/// Connecting with `config` is refused naming `field`, and the error shows none of `secrets`.
async fn refused(config: &ClusterConfig, field: &str, secrets: &[&str]) {
    let err = connect(config, "cred-node").await.unwrap_err();
    let text = dsmil_core::report::chain(&err);
    assert!(
        matches!(&err, ClusterError::Refused { field: f, .. } if *f == field),
        "{text}"
    );
    for secret in secrets {
        assert!(!text.contains(secret), "{text}");
    }
}
