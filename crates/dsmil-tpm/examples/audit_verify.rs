//! Verifies an audit log offline: `cargo run -p dsmil-tpm --example audit_verify -- DIR`
//! (DIR holds `audit.log` and `signer.pub`, the signer's PEM public key).

use dsmil_tpm::audit::verify_file;
use dsmil_tpm::soft_key::P256Verifier;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: audit_verify DIR")?;
    let dir = std::path::Path::new(&dir);
    let key = std::fs::read_to_string(dir.join("signer.pub"))?;
    let key = dsmil_tpm::der::ecc_p256_point_from_text(&key)
        .ok_or("signer.pub: not a P-256 public key")?;
    let summary = verify_file(&dir.join("audit.log"), &P256Verifier::new(key)).await?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
