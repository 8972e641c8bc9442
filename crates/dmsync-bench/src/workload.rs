//! The generated data: registrations as an Autopilot CSV produced on the fly (never held in
//! memory at once), and import requests. Every hardware hash is unique by construction: a
//! domain byte and the index, then pseudo-random filler.

use std::fmt::Write as _;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures::Stream;

/// CSV rows per chunk of the streamed body.
const ROWS_PER_CHUNK: u64 = 2000;
/// Hash domains, so that registered and imported hashes never collide.
const REGISTERED: u8 = 0xA1;
const IMPORTED: u8 = 0xB2;

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A 64-byte hardware hash, unique per (domain, index).
pub fn hardware_hash(domain: u8, index: u64) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[0] = domain;
    out[1..9].copy_from_slice(&index.to_be_bytes());
    let mut x = index ^ (u64::from(domain) << 56);
    for chunk in out[9..].chunks_mut(8) {
        x = splitmix64(x);
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    out
}

/// The Autopilot CSV for `devices` registrations; with `changed_every = Some(k)`, every k-th row
/// (indices 0, k, 2k, …) carries the group tag `Changed` instead of `Fleet`.
pub fn csv_stream(
    devices: u64,
    changed_every: Option<u64>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let header = Bytes::from_static(b"Device Serial Number,Windows Product ID,Hardware Hash,Group Tag\n");
    let chunks = devices.div_ceil(ROWS_PER_CHUNK);
    let rows = (0..chunks).map(move |c| {
        let mut text = String::with_capacity(ROWS_PER_CHUNK as usize * 112);
        for i in c * ROWS_PER_CHUNK..((c + 1) * ROWS_PER_CHUNK).min(devices) {
            let tag = match changed_every {
                Some(k) if i % k == 0 => "Changed",
                _ => "Fleet",
            };
            let _ = writeln!(text, "SN-{:07},,{},{tag}", i + 1, STANDARD.encode(hardware_hash(REGISTERED, i)));
        }
        Ok(Bytes::from(text))
    });
    futures::stream::iter(std::iter::once(Ok(header)).chain(rows))
}

/// The body of one `import` request: identities `first..first + count`.
pub fn import_body(first: u64, count: u64) -> serde_json::Value {
    let items: Vec<serde_json::Value> = (first..first + count)
        .map(|i| {
            serde_json::json!({
                "serialNumber": format!("IMP-{:07}", i + 1),
                "hardwareIdentifier": STANDARD.encode(hardware_hash(IMPORTED, i)),
                "groupTag": "Imp",
            })
        })
        .collect();
    serde_json::json!({ "importedWindowsAutopilotDeviceIdentities": items })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_unique_and_domains_apart() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000 {
            assert!(seen.insert(hardware_hash(REGISTERED, i)));
            assert!(seen.insert(hardware_hash(IMPORTED, i)));
        }
    }

    #[test]
    fn csv_has_header_and_one_line_per_device() {
        use futures::StreamExt;
        let chunks: Vec<Bytes> =
            futures::executor::block_on(csv_stream(4001, Some(100)).map(|c| c.unwrap()).collect::<Vec<_>>());
        let text: String = chunks.iter().map(|c| std::str::from_utf8(c).unwrap()).collect();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4002);
        assert!(lines[1].starts_with("SN-0000001,,") && lines[1].ends_with(",Changed"));
        assert!(lines[2].ends_with(",Fleet"));
        assert_eq!(lines.iter().filter(|l| l.ends_with(",Changed")).count(), 41);
    }
}
