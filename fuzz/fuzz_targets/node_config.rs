//! Config files from installers: parsing and validation never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = rollcall_node::NodeConfig::parse("fuzz.toml", text);
        let _ = rollcall_fraud::Policy::from_toml("fuzz.toml", text);
    }
});
