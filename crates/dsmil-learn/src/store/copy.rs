//! PostgreSQL's binary COPY format, written by hand for the staging table's columns.
//!
//! Layout (PostgreSQL docs, "COPY — Binary Format"): an 11-byte signature, a flags word and a
//! header-extension length; then per row a 16-bit field count and, per field, a 32-bit byte
//! length (−1 for NULL) followed by the value in the type's binary `send` format; a 16-bit −1
//! ends the data. Integers are big-endian.

use chrono::{DateTime, Utc};

use crate::record::StoredRecord;

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Microseconds from the Unix epoch to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// The columns [`encode_row`] writes after the optional `ord`, in order, for
/// `COPY … (columns) FROM STDIN`.
pub(super) const COLUMNS: &str = "record_id, agent_id, task_type, task_description, \
     execution_time_ms, success_rate, resource_usage, error_details, context_factors, \
     vector_embedding, tpm_signature, timestamp";

/// Starts a COPY stream.
pub(super) fn header(out: &mut Vec<u8>) {
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
    out.extend_from_slice(&0i32.to_be_bytes()); // no header extension
}

/// Ends a COPY stream.
pub(super) fn trailer(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i16).to_be_bytes());
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    // Every field we write is far below 2 GiB (descriptions are capped at 16 KiB).
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i32).to_be_bytes());
}

fn text(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(v) => field(out, v.as_bytes()),
        None => null(out),
    }
}

fn jsonb(out: &mut Vec<u8>, value: &impl serde::Serialize) {
    // jsonb's binary format: version byte 1, then the JSON text.
    let mut bytes = vec![1u8];
    if serde_json::to_writer(&mut bytes, value).is_err() {
        bytes.truncate(1);
        bytes.extend_from_slice(b"{}");
    }
    field(out, &bytes);
}

fn timestamptz(out: &mut Vec<u8>, t: DateTime<Utc>) {
    field(
        out,
        &(t.timestamp_micros() - PG_EPOCH_OFFSET_US).to_be_bytes(),
    );
}

fn vector(out: &mut Vec<u8>, values: &[f32]) {
    // pgvector's binary format: dimension (int16), unused (int16), then float4 values.
    let mut bytes = Vec::with_capacity(4 + values.len() * 4);
    bytes.extend_from_slice(&(values.len() as i16).to_be_bytes());
    bytes.extend_from_slice(&0i16.to_be_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_be_bytes());
    }
    field(out, &bytes);
}

/// Appends one row: `ord` (when given, for the staging table) and then [`COLUMNS`].
pub(super) fn encode_row(out: &mut Vec<u8>, ord: Option<i64>, r: &StoredRecord) {
    match ord {
        Some(ord) => {
            out.extend_from_slice(&13i16.to_be_bytes());
            field(out, &ord.to_be_bytes());
        }
        None => out.extend_from_slice(&12i16.to_be_bytes()),
    }
    field(out, r.record_id.as_bytes());
    text(out, Some(r.agent_id.as_str()));
    text(out, Some(&r.task_type));
    text(out, Some(&r.task_description));
    // `prepare` guarantees the time fits in i64.
    field(out, &(r.execution_time_ms as i64).to_be_bytes());
    field(out, &r.success_rate.to_be_bytes());
    jsonb(out, &r.resource_usage);
    text(out, r.error_details.as_deref());
    jsonb(out, &r.context_factors);
    vector(out, r.embedding.as_slice());
    text(out, r.tpm_signature.as_deref());
    timestamptz(out, r.timestamp);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_count_from_2000() {
        let mut out = Vec::new();
        let t = DateTime::parse_from_rfc3339("2000-01-01T00:00:01Z")
            .unwrap()
            .with_timezone(&Utc);
        timestamptz(&mut out, t);
        assert_eq!(&out[..4], &8i32.to_be_bytes());
        assert_eq!(&out[4..], &1_000_000i64.to_be_bytes());
    }

    #[test]
    fn vectors_carry_their_dimension() {
        let mut out = Vec::new();
        vector(&mut out, &[1.0, -2.0]);
        assert_eq!(&out[..4], &12i32.to_be_bytes());
        assert_eq!(&out[4..6], &2i16.to_be_bytes());
        assert_eq!(&out[8..12], &1.0f32.to_be_bytes());
    }
}
