//! JSON string escaping for the error bodies, the hottest text dmsync writes: a retry storm's
//! 429 carries Intune's JSON message inside a JSON string, so every quote and line break of it
//! is escaped twice. serde_json escapes a byte at a time; this checks eight at a time and
//! copies plain runs whole. The output is byte for byte serde_json's (the tests hold it there).

const LOW: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes of `word` is a control character, `"` or `\`. Exact as a
/// yes/no answer; which byte it is, the caller finds by looking.
#[inline]
fn needs_escape(word: u64) -> bool {
    let below_space = word.wrapping_sub(LOW * 0x20) & !word & HIGH;
    let quote = word ^ (LOW * u64::from(b'"'));
    let backslash = word ^ (LOW * u64::from(b'\\'));
    let zero_in = |v: u64| v.wrapping_sub(LOW) & !v & HIGH;
    (below_space | zero_in(quote) | zero_in(backslash)) != 0
}

/// How each byte is written inside a JSON string: 0 as itself, `u` as `\u00XX`, any other
/// value `c` as `\c`. The same rules as serde_json's table.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Appends `text` as a JSON string, quotes included, escaped exactly as serde_json does.
pub fn push_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut plain_from = 0;
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut words {
        if needs_escape(u64::from_le_bytes(chunk.try_into().expect("eight bytes"))) {
            for (offset, &byte) in chunk.iter().enumerate() {
                if ESCAPE[usize::from(byte)] != 0 {
                    push_escaped(out, &bytes[plain_from..at + offset], byte);
                    plain_from = at + offset + 1;
                }
            }
        }
        at += 8;
    }
    for (offset, &byte) in words.remainder().iter().enumerate() {
        if ESCAPE[usize::from(byte)] != 0 {
            push_escaped(out, &bytes[plain_from..at + offset], byte);
            plain_from = at + offset + 1;
        }
    }
    out.extend_from_slice(&bytes[plain_from..]);
    out.push(b'"');
}

/// Appends the plain run before an escaped byte, then the byte's escape.
#[inline]
fn push_escaped(out: &mut Vec<u8>, plain: &[u8], byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(plain);
    match ESCAPE[usize::from(byte)] {
        b'u' => {
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]])
        }
        code => out.extend_from_slice(&[b'\\', code]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(text: &str) -> String {
        let mut out = Vec::new();
        push_str(&mut out, text);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_ascii_byte_at_every_offset_of_a_word_escapes_as_serde_json_does() {
        for byte in 0u8..0x80 {
            for offset in 0..17 {
                let text = format!("{}{}{}", "a".repeat(offset), char::from(byte), "b".repeat(offset % 5));
                assert_eq!(ours(&text), serde_json::to_string(&text).unwrap(), "byte {byte:#04x} at {offset}");
            }
        }
    }

    #[test]
    fn mixed_text_escapes_as_serde_json_does() {
        // A fixed pseudo-random walk over quotes, backslashes, controls, ASCII and multi-byte
        // characters, so that escapes fall at every position of the eight-byte words.
        let alphabet =
            ['"', '\\', '\n', '\r', '\t', '\u{1}', '\u{1f}', '\u{7f}', 'a', 'Z', ' ', '/', 'é', '€', '𝄞', '{', '}'];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for length in 0..200 {
            let text: String = (0..length)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    alphabet[(state % alphabet.len() as u64) as usize]
                })
                .collect();
            assert_eq!(ours(&text), serde_json::to_string(&text).unwrap(), "{text:?}");
        }
        assert_eq!(ours(""), "\"\"");
    }
}
