//! Quotes PCRs with a TPM and writes the files `tpm2_checkquote` verifies.
//!
//! ```sh
//! cargo run -p dsmil-tpm --example quote -- OUT_DIR [NONCE_HEX]            # software TPM
//! cargo run -p dsmil-tpm --features tss --example quote -- OUT_DIR c0ffee \
//!     swtpm:host=127.0.0.1,port=2321                                         # swtpm / a real TPM
//! tpm2_checkquote -u OUT_DIR/ak.pub.pem -m OUT_DIR/quote.msg -s OUT_DIR/quote.sig \
//!     -f OUT_DIR/quote.pcrs -g sha256 -q c0ffee
//! ```
//!
//! The software TPM keeps its state in `OUT_DIR/soft-tpm`; a tss TPM's key blobs go to
//! `OUT_DIR/tpm-keys`.

use std::path::PathBuf;

use dsmil_tpm::TpmBackendSpec;
use dsmil_tpm::values::{HashAlgorithm, PcrSelection};
use dsmil_tpm::{Tpm, TpmOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .ok_or("usage: quote OUT_DIR [NONCE_HEX] [TCTI]")?,
    );
    let nonce_hex = args.next().unwrap_or_else(|| "c0ffee".into());
    let nonce = dsmil_core::hex::decode(&nonce_hex).map_err(|_| "the nonce must be hex")?;
    let spec = match args.next() {
        Some(tcti) => format!("tss:{tcti}").parse::<TpmBackendSpec>()?,
        None => TpmBackendSpec::Soft,
    };
    let tpm = Tpm::open(&spec, &out, TpmOptions::default())?;
    tpm.ensure_attestation_key("ak").await?;
    let pcrs = PcrSelection::new(HashAlgorithm::Sha256, [0, 1, 7])?;
    let done = tpm.quote("ak", &pcrs, &nonce).await?;
    done.value.verify(&nonce)?;
    done.value.write_tpm2_tools_files(&out)?;
    println!(
        "{} quote of PCRs 0,1,7 ({}, {} µs) written to {}; hardware-rooted: {}",
        tpm.backend_name(),
        done.operation_id,
        done.execution_time.as_micros(),
        out.display(),
        tpm.hardware_rooted()
    );
    Ok(())
}
