//! The services `cargo xtask services up` provisions really work: swtpm answers raw TPM 2.0
//! commands, PostgreSQL has pgvector. Each test skips when its service is not configured, and
//! fails instead when `DSMIL_REQUIRE_SERVICES=1`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use dsmil_core::testenv::{DATABASE_URL_VAR, TCTI_VAR, service_from_env};

/// Host and port of a `swtpm:host=H,port=P` TCTI string (tss2 defaults: localhost, 2321).
fn parse_swtpm_tcti(tcti: &str) -> Result<(String, u16), String> {
    let conf = tcti
        .strip_prefix("swtpm")
        .ok_or_else(|| format!("not a swtpm TCTI: {tcti:?}"))?;
    let conf = match conf.strip_prefix(':') {
        Some(rest) => rest,
        None if conf.is_empty() => "",
        None => return Err(format!("not a swtpm TCTI: {tcti:?}")),
    };
    let (mut host, mut port) = ("localhost".to_owned(), 2321);
    for pair in conf.split(',').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("host", h)) if !h.is_empty() => host = h.to_owned(),
            Some(("port", p)) => port = p.parse().map_err(|e| format!("port {p:?}: {e}"))?,
            _ => return Err(format!("unexpected {pair:?} in TCTI {tcti:?}")),
        }
    }
    Ok((host, port))
}

/// TPM2_GetRandom(bytesRequested = 16): tag TPM_ST_NO_SESSIONS, size 12, code 0x17B.
const GET_RANDOM_16: [u8; 12] = [
    0x80, 0x01, // tag
    0x00, 0x00, 0x00, 0x0C, // commandSize
    0x00, 0x00, 0x01, 0x7B, // TPM_CC_GetRandom
    0x00, 0x10, // bytesRequested
];

/// Sends one raw TPM command on the swtpm server socket and returns (response code, body).
fn tpm_transact(stream: &mut TcpStream, command: &[u8]) -> (u32, Vec<u8>) {
    stream.write_all(command).expect("sending the TPM command");
    let mut header = [0u8; 10];
    stream
        .read_exact(&mut header)
        .expect("reading the TPM response header");
    let tag = u16::from_be_bytes([header[0], header[1]]);
    assert_eq!(tag, 0x8001, "response tag");
    let size = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
    let code = u32::from_be_bytes([header[6], header[7], header[8], header[9]]);
    assert!(size >= 10, "response size {size}");
    let mut body = vec![0u8; size - 10];
    stream
        .read_exact(&mut body)
        .expect("reading the TPM response body");
    (code, body)
}

/// The 16 random bytes of a successful TPM2_GetRandom response body (a TPM2B_DIGEST).
fn random_bytes(body: &[u8]) -> Vec<u8> {
    assert!(body.len() >= 2, "body {body:?}");
    let len = u16::from_be_bytes([body[0], body[1]]) as usize;
    assert_eq!(len, 16, "randomBytes.size");
    assert_eq!(body.len(), 2 + len, "body length");
    body[2..].to_vec()
}

#[test]
fn swtpm_answers_get_random() {
    let Some(tcti) = service_from_env(TCTI_VAR).unwrap_or_else(|e| panic!("{e}")) else {
        eprintln!("skipping: {TCTI_VAR} is not set (run `cargo xtask services up`)");
        return;
    };
    let (host, port) = parse_swtpm_tcti(&tcti).unwrap();
    let mut stream = TcpStream::connect((host.as_str(), port))
        .unwrap_or_else(|e| panic!("connecting to swtpm at {host}:{port}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    let (code, first) = tpm_transact(&mut stream, &GET_RANDOM_16);
    assert_eq!(code, 0, "TPM2_GetRandom response code {code:#x}");
    let first = random_bytes(&first);
    let (code, second) = tpm_transact(&mut stream, &GET_RANDOM_16);
    assert_eq!(code, 0, "TPM2_GetRandom response code {code:#x}");
    let second = random_bytes(&second);

    assert_ne!(first, second, "two GetRandom calls gave the same bytes");
    assert_ne!(first, vec![0u8; 16], "GetRandom gave all zeros");
}

#[tokio::test(flavor = "current_thread")]
async fn postgres_has_pgvector() {
    let Some(url) = service_from_env(DATABASE_URL_VAR).unwrap_or_else(|e| panic!("{e}")) else {
        eprintln!("skipping: {DATABASE_URL_VAR} is not set (run `cargo xtask services up`)");
        return;
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));

    let version: String =
        sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(version.starts_with("0."), "pgvector version {version}");

    let l2: f64 = sqlx::query_scalar("SELECT '[1,2,3]'::vector <-> '[4,6,3]'::vector")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!((l2 - 5.0).abs() < 1e-9, "L2 distance {l2}");

    let orthogonal: f64 = sqlx::query_scalar("SELECT '[1,0]'::vector <=> '[0,1]'::vector")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        (orthogonal - 1.0).abs() < 1e-9,
        "cosine distance {orthogonal}"
    );
    let parallel: f64 = sqlx::query_scalar("SELECT '[1,2]'::vector <=> '[2,4]'::vector")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(parallel.abs() < 1e-6, "cosine distance {parallel}");

    // Nearest neighbour through an HNSW index, as the learning layer will query it. A
    // temporary table keeps the shared test database clean; one connection keeps it visible.
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("CREATE TEMP TABLE items (id int PRIMARY KEY, embedding vector(3))")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO items VALUES (1, '[1,0,0]'), (2, '[0,1,0]'), (3, '[0,0,1]')")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)")
        .execute(&mut *conn)
        .await
        .unwrap();
    let nearest: i32 =
        sqlx::query_scalar("SELECT id FROM items ORDER BY embedding <-> $1::vector LIMIT 1")
            .bind("[0.1,0.9,0.2]")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(nearest, 2);
}

#[test]
fn tcti_strings_parse() {
    assert_eq!(
        parse_swtpm_tcti("swtpm:host=127.0.0.1,port=2321"),
        Ok(("127.0.0.1".to_owned(), 2321))
    );
    assert_eq!(
        parse_swtpm_tcti("swtpm:port=40000"),
        Ok(("localhost".to_owned(), 40000))
    );
    assert_eq!(
        parse_swtpm_tcti("swtpm"),
        Ok(("localhost".to_owned(), 2321))
    );
    assert!(parse_swtpm_tcti("device:/dev/tpmrm0").is_err());
    assert!(parse_swtpm_tcti("swtpmx:port=1").is_err());
    assert!(parse_swtpm_tcti("swtpm:port=99999").is_err());
    assert!(parse_swtpm_tcti("swtpm:bogus").is_err());
}
