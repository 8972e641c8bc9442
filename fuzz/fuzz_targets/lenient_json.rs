//! Feeds arbitrary bytes to the JSON body parsers: the lenient one (JSON, then json5) that
//! updateDeviceProperties uses, and the strict one every other body goes through. They must
//! never panic or overflow the stack, and whatever they accept must nest no deeper than the
//! bound the scan enforces.
#![no_main]

use dmsync_graph::bounded::{MAX_JSON_DEPTH, from_lenient_slice, from_slice};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    for value in [from_lenient_slice::<Value>(data), from_slice::<Value>(data)].into_iter().flatten() {
        assert!(depth(&value) <= MAX_JSON_DEPTH);
    }
});
