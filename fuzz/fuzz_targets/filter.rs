//! Feeds arbitrary text to the `$filter` parser. It must never panic, loop or recurse without
//! bound; whatever it accepts must only name the properties the resolver allowed.
#![no_main]

use dmsync_core::filter::{Filter, MAX_NODES, parse_filter};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    Serial,
    Tag,
}

fn resolve(name: &str) -> Option<Field> {
    match name.to_ascii_lowercase().as_str() {
        "serialnumber" => Some(Field::Serial),
        "grouptag" => Some(Field::Tag),
        _ => None,
    }
}

fn depth(f: &Filter<Field>) -> usize {
    match f {
        Filter::And(a, b) | Filter::Or(a, b) => 1 + depth(a).max(depth(b)),
        Filter::Not(a) => 1 + depth(a),
        _ => 1,
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(tree) = parse_filter(text, resolve) {
            // and/or chains are flat in the source but nest in the tree; the node bound bounds them.
            assert!(depth(&tree) <= MAX_NODES);
        }
    }
});
