//! Embeds a few task descriptions and prints their pairwise cosine similarities.
//!
//! `cargo run -p dsmil-learn --example encode -- "hash the audit log" "render a chart"`

use dsmil_learn::encoder::TaskEncoder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut texts: Vec<String> = std::env::args().skip(1).collect();
    if texts.is_empty() {
        texts = vec![
            "hash the audit log files".into(),
            "compute hashes of the audit logs".into(),
            "render the dashboard chart".into(),
        ];
    }
    let encoder = TaskEncoder::default();
    let embeddings = texts
        .iter()
        .map(|t| encoder.encode(t, "", None))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, a) in embeddings.iter().enumerate() {
        for (j, b) in embeddings.iter().enumerate().skip(i + 1) {
            let cos: f32 = a
                .as_slice()
                .iter()
                .zip(b.as_slice())
                .map(|(x, y)| x * y)
                .sum();
            println!("{cos:+.3}  {:?} ~ {:?}", texts[i], texts[j]);
        }
    }
    Ok(())
}
