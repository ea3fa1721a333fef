//! The little DER and PEM DSMIL writes and reads: `SubjectPublicKeyInfo` for P-256 and RSA
//! public keys (written, and read back from the PEM a signed tree head carries), and ECDSA
//! signatures between DER and the TPM's fixed `r`, `s`.

const EC_PUBLIC_KEY_OID: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256_OID: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const RSA_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

fn len(out: &mut Vec<u8>, n: usize) {
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
}

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    len(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

/// A DER INTEGER from unsigned big-endian bytes.
fn uint(bytes: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = {
        let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
        &bytes[first..]
    };
    let mut body = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.is_empty() || trimmed[0] & 0x80 != 0 {
        body.push(0);
    }
    body.extend_from_slice(trimmed);
    tlv(0x02, &body)
}

/// SPKI of a P-256 point.
pub fn ecc_p256_spki(point: &[u8]) -> Vec<u8> {
    let alg = [tlv(0x06, EC_PUBLIC_KEY_OID), tlv(0x06, P256_OID)].concat();
    let mut bits = vec![0u8];
    bits.extend_from_slice(point);
    tlv(0x30, &[tlv(0x30, &alg), tlv(0x03, &bits)].concat())
}

/// A P-256 public key as PEM `PUBLIC KEY` (SPKI), the form openssl and tpm2-tools read.
pub fn ecc_p256_pem(point: &[u8]) -> String {
    pem("PUBLIC KEY", &ecc_p256_spki(point))
}

/// The SEC1 point of a P-256 public key written as PEM `PUBLIC KEY` (SPKI) or, as files of
/// earlier versions were, as the point in hex; `None` for anything else (another algorithm or
/// curve included).
pub fn ecc_p256_point_from_text(text: &str) -> Option<Vec<u8>> {
    if let Some(der) = pem_decode("PUBLIC KEY", text) {
        return match spki_key(&der)? {
            SpkiKey::EccP256(point) => Some(point),
            SpkiKey::Rsa(_) => None,
        };
    }
    dsmil_core::hex::decode(text.trim())
        .ok()
        .filter(|point| point.len() == 65 && point[0] == 0x04)
}

/// The PKCS#1 `RSAPublicKey`.
pub fn rsa_public_key(modulus: &[u8], exponent: u32) -> Vec<u8> {
    tlv(
        0x30,
        &[uint(modulus), uint(&exponent.to_be_bytes())].concat(),
    )
}

/// SPKI of an RSA key.
pub fn rsa_spki(modulus: &[u8], exponent: u32) -> Vec<u8> {
    let alg = [tlv(0x06, RSA_OID), vec![0x05, 0x00]].concat();
    let mut bits = vec![0u8];
    bits.extend_from_slice(&rsa_public_key(modulus, exponent));
    tlv(0x30, &[tlv(0x30, &alg), tlv(0x03, &bits)].concat())
}

/// Modulus (without leading zeros) and exponent of a PKCS#1 `RSAPublicKey`; `None` unless it
/// is one whole DER `SEQUENCE` of two INTEGERs.
pub fn rsa_public_key_parts(der: &[u8]) -> Option<(Vec<u8>, u32)> {
    let (0x30, seq, []) = element(der)? else {
        return None;
    };
    let (0x02, n, rest) = element(seq)? else {
        return None;
    };
    let (0x02, e, []) = element(rest)? else {
        return None;
    };
    let first = n.iter().position(|&b| b != 0).unwrap_or(n.len());
    if e.len() > 4 {
        return None;
    }
    let exponent = e.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
    Some((n[first..].to_vec(), exponent))
}

/// A DER length at the start of `d` and what follows it: the short form below 128, else the
/// long form in the fewest bytes (one or two here: what keys and signatures need). Anything
/// else — a long form for a short length, a leading zero byte, the indefinite form — is not
/// DER and gives `None`, so each value has exactly one accepted encoding.
fn length(d: &[u8]) -> Option<(usize, &[u8])> {
    let (&first, rest) = d.split_first()?;
    match first {
        n if n < 0x80 => Some((usize::from(n), rest)),
        0x81 => {
            let (&n, rest) = rest.split_first()?;
            (n >= 0x80).then_some((usize::from(n), rest))
        }
        0x82 => {
            let b = rest.get(..2)?;
            let n = (usize::from(b[0]) << 8) | usize::from(b[1]);
            (n > 0xff).then_some((n, rest.get(2..)?))
        }
        _ => None,
    }
}

/// One DER element at the start of `d`: its tag, its contents, and what follows it; `None`
/// unless its length is in DER's one encoding ([`length`]).
fn element(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = d.split_first()?;
    let (n, rest) = length(rest)?;
    Some((tag, rest.get(..n)?, rest.get(n..)?))
}

/// What a `SubjectPublicKeyInfo` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpkiKey {
    /// An `id-ecPublicKey` key on `prime256v1`: the SEC1 point.
    EccP256(Vec<u8>),
    /// An `rsaEncryption` key: the PKCS#1 `RSAPublicKey`.
    Rsa(Vec<u8>),
}

/// The key in a DER `SubjectPublicKeyInfo` of a P-256 or RSA key; `None` for other algorithms,
/// curves, or anything that is not one whole SPKI.
pub fn spki_key(der: &[u8]) -> Option<SpkiKey> {
    let (0x30, spki, []) = element(der)? else {
        return None;
    };
    let (0x30, alg, rest) = element(spki)? else {
        return None;
    };
    let (0x03, bits, []) = element(rest)? else {
        return None;
    };
    // A key is a whole number of bytes: no unused bits.
    let (0, key) = bits.split_first()? else {
        return None;
    };
    let (0x06, oid, params) = element(alg)? else {
        return None;
    };
    match (oid, params) {
        (EC_PUBLIC_KEY_OID, params) => match element(params)? {
            (0x06, P256_OID, []) => Some(SpkiKey::EccP256(key.to_vec())),
            _ => None,
        },
        (RSA_OID, [0x05, 0x00]) => Some(SpkiKey::Rsa(key.to_vec())),
        _ => None,
    }
}

/// The DER inside a PEM block labelled `label` (`-----BEGIN label-----`), tolerating CRLF line
/// ends and surrounding whitespace; `None` for any other label, bad base64 or text around it.
pub fn pem_decode(label: &str, text: &str) -> Option<Vec<u8>> {
    let mut lines = text.trim().lines().map(str::trim);
    if lines.next()? != format!("-----BEGIN {label}-----") {
        return None;
    }
    let mut body = String::new();
    for line in lines.by_ref() {
        if line == format!("-----END {label}-----") {
            return lines.next().is_none().then(|| base64_decode(&body))?;
        }
        body.push_str(line);
    }
    None
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648).
pub fn base64(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                text.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                text.push('=');
            }
        }
    }
    text
}

/// Decodes standard base64 (padding optional, no whitespace); `None` on anything else.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let body = text.trim_end_matches('=');
    if text.len() - body.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let (mut bits, mut n) = (0u32, 0u32);
    for c in body.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    // Leftover bits must be zero padding of a well-formed encoding.
    (n < 6 && bits & ((1 << n) - 1) == 0).then_some(out)
}

/// PEM armour with 64-column base64.
pub fn pem(label: &str, der: &[u8]) -> String {
    let text = base64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// DER ECDSA signature from fixed-width `r` and `s`.
pub fn ecdsa_der(r: &[u8], s: &[u8]) -> Vec<u8> {
    tlv(0x30, &[uint(r), uint(s)].concat())
}

/// `r` and `s`, each left-padded to 32 bytes, from a DER ECDSA signature; `None` when the
/// input is not one in DER's single encoding: lengths in their shortest form, each INTEGER
/// positive, non-zero and without a redundant leading zero byte, nothing after the SEQUENCE.
/// A signature therefore has one accepted byte string (no malleated copies of it verify).
pub fn ecdsa_fixed(der: &[u8]) -> Option<([u8; 32], [u8; 32])> {
    /// A positive, minimally encoded INTEGER of at most 32 significant bytes.
    fn scalar(d: &[u8]) -> Option<([u8; 32], &[u8])> {
        let (0x02, body, rest) = element(d)? else {
            return None;
        };
        let (&first, tail) = body.split_first()?;
        if first & 0x80 != 0 {
            return None; // negative
        }
        let digits = if first == 0 {
            // A leading zero is allowed only to keep a high bit from reading as a sign.
            if tail.first().is_none_or(|b| b & 0x80 == 0) {
                return None;
            }
            tail
        } else {
            body
        };
        if digits.len() > 32 || digits.iter().all(|&b| b == 0) {
            return None;
        }
        let mut out = [0u8; 32];
        out[32 - digits.len()..].copy_from_slice(digits);
        Some((out, rest))
    }
    let (0x30, body, []) = element(der)? else {
        return None;
    };
    let (r, rest) = scalar(body)?;
    let (s, rest) = scalar(rest)?;
    rest.is_empty().then_some((r, s))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn p256_pem_matches_tpm2_readpublic() {
        // The AK swtpm made; tpm2_readpublic -f pem printed this PEM.
        let expected = "-----BEGIN PUBLIC KEY-----\n\
            MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7tDe25WaKefh5my+NW7Gah52ULDe\n\
            umCnGVDPqKKAHJTey1a+orjG/LVcsBmUxg2SJzreFexZGUcls/lzAlV9Iw==\n\
            -----END PUBLIC KEY-----\n";
        let body: String = expected
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = base64_decode(&body).unwrap();
        let point = &der[der.len() - 65..];
        assert_eq!(pem("PUBLIC KEY", &ecc_p256_spki(point)), expected);
    }

    #[test]
    fn spkis_and_pems_read_back_what_was_written() {
        let point: Vec<u8> = std::iter::once(4).chain(1..=64).collect();
        let der = ecc_p256_spki(&point);
        assert_eq!(spki_key(&der), Some(SpkiKey::EccP256(point)));
        let text = pem("PUBLIC KEY", &der);
        assert_eq!(pem_decode("PUBLIC KEY", &text), Some(der.clone()));
        assert_eq!(
            pem_decode("PUBLIC KEY", &text.replace('\n', "\r\n")),
            Some(der.clone())
        );
        assert_eq!(pem_decode("CERTIFICATE", &text), None, "another label");
        assert_eq!(
            pem_decode("PUBLIC KEY", &text[..text.len() - 10]),
            None,
            "no end line"
        );
        assert_eq!(pem_decode("PUBLIC KEY", &format!("{text}junk")), None);

        let modulus: Vec<u8> = (0..256).map(|i| (i as u8) | 0x80).collect();
        let der = rsa_spki(&modulus, 65537);
        assert_eq!(
            spki_key(&der),
            Some(SpkiKey::Rsa(rsa_public_key(&modulus, 65537)))
        );

        // Cut, extended, or another curve: not a key.
        let good = ecc_p256_spki(&[4; 65]);
        assert_eq!(spki_key(&good[..good.len() - 1]), None);
        assert_eq!(spki_key(&[good.clone(), vec![0]].concat()), None);
        let p384 = good
            .windows(P256_OID.len())
            .position(|w| w == P256_OID)
            .unwrap();
        let mut other = good.clone();
        other[p384 + P256_OID.len() - 1] = 0x22;
        assert_eq!(spki_key(&other), None);
        assert_eq!(spki_key(&[]), None);
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
        }
        assert_eq!(base64_decode("Zm9v!"), None);
        assert_eq!(base64_decode("Zh=="), None, "non-zero padding bits");
    }

    #[test]
    fn rsa_public_key_round_trips() {
        let modulus: Vec<u8> = (0..256).map(|i| (i as u8) | 0x80).collect();
        let der = rsa_public_key(&modulus, 65537);
        assert_eq!(rsa_public_key_parts(&der), Some((modulus, 65537)));
        assert_eq!(rsa_public_key_parts(&der[..10]), None);
    }

    #[test]
    fn ecdsa_der_round_trips_with_high_bits_and_leading_zeros() {
        for (r, s) in [([0x80u8; 32], [0x01u8; 32]), ([0u8; 32], [0xffu8; 32])] {
            let mut r2 = r;
            r2[31] = 7;
            let der = ecdsa_der(&r2, &s);
            assert_eq!(ecdsa_fixed(&der), Some((r2, s)));
        }
        assert_eq!(ecdsa_fixed(&[0x30, 0x00, 0x00]), None);
        assert_eq!(ecdsa_fixed(&[]), None);
    }

    /// Every malleated form of one signature is refused; only the DER encoding is accepted.
    #[test]
    fn ecdsa_signatures_have_exactly_one_accepted_encoding() {
        let r = [0x11u8; 32];
        let mut s = [0x22u8; 32];
        s[0] = 0x92; // high bit: DER needs a leading zero here
        let good = ecdsa_der(&r, &s);
        assert_eq!(ecdsa_fixed(&good), Some((r, s)));
        let int = |body: &[u8]| [&[0x02, body.len() as u8][..], body].concat();
        let seq = |body: &[u8]| [&[0x30, body.len() as u8][..], body].concat();
        let s_der = [&[0u8][..], &s].concat();
        let malleated: Vec<(&str, Vec<u8>)> = vec![
            // The SEQUENCE length in the long form although under 128.
            ("long-form sequence length", {
                let body = [int(&r), int(&s_der)].concat();
                [&[0x30, 0x81, body.len() as u8][..], &body].concat()
            }),
            // An INTEGER length in the long form.
            ("long-form integer length", {
                let long_r = [&[0x02, 0x81, 32][..], &r].concat();
                seq(&[long_r, int(&s_der)].concat())
            }),
            (
                "redundant leading zero",
                seq(&[int(&[&[0u8][..], &r].concat()), int(&s_der)].concat()),
            ),
            (
                "two leading zeros",
                seq(&[int(&r), int(&[&[0u8, 0][..], &s].concat())].concat()),
            ),
            ("negative s", seq(&[int(&r), int(&s)].concat())),
            ("zero r", seq(&[int(&[0]), int(&s_der)].concat())),
            ("empty integer", seq(&[int(&[]), int(&s_der)].concat())),
            ("trailing byte", [good.clone(), vec![0]].concat()),
            (
                "trailing element inside",
                seq(&[int(&r), int(&s_der), int(&[1])].concat()),
            ),
            (
                "indefinite length",
                [&[0x30, 0x80][..], &good[2..], &[0, 0]].concat(),
            ),
            (
                "over 32 bytes",
                seq(&[int(&[&[1u8][..], &r].concat()), int(&s_der)].concat()),
            ),
            ("wrong outer tag", [&[0x31][..], &good[1..]].concat()),
        ];
        for (what, der) in malleated {
            assert_eq!(ecdsa_fixed(&der), None, "{what}: {der:02x?}");
        }
    }

    #[test]
    fn p256_keys_read_back_from_pem_and_from_legacy_hex() {
        let mut point = vec![0x04u8];
        point.extend((1..=64).map(|i| i as u8));
        let pem_text = ecc_p256_pem(&point);
        assert!(
            pem_text.starts_with("-----BEGIN PUBLIC KEY-----\n"),
            "{pem_text}"
        );
        assert_eq!(ecc_p256_point_from_text(&pem_text), Some(point.clone()));
        let hex_text = dsmil_core::hex::encode(&point) + "\n";
        assert_eq!(ecc_p256_point_from_text(&hex_text), Some(point.clone()));
        assert_eq!(ecc_p256_point_from_text("04abcd"), None, "too short");
        assert_eq!(ecc_p256_point_from_text("not a key"), None);
        let rsa = pem("PUBLIC KEY", &rsa_spki(&[0xc5; 256], 65537));
        assert_eq!(
            ecc_p256_point_from_text(&rsa),
            None,
            "an RSA key is not a P-256 key"
        );
    }

    #[test]
    fn lengths_have_one_encoding() {
        assert_eq!(length(&[0x05]), Some((5, &[][..])));
        assert_eq!(length(&[0x81, 0x80]), Some((128, &[][..])));
        assert_eq!(length(&[0x81, 0x7f]), None, "long form for a short length");
        assert_eq!(length(&[0x82, 0x01, 0x00]), Some((256, &[][..])));
        assert_eq!(
            length(&[0x82, 0x00, 0xff]),
            None,
            "a leading zero length byte"
        );
        assert_eq!(length(&[0x80]), None, "indefinite");
        assert_eq!(length(&[0x83, 1, 0, 0]), None, "longer than keys here need");
    }
}
