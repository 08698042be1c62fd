//! The config parser on arbitrary bytes: an error with a place, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use zoomd::config::{Config, ConfigError, Env};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(ConfigError::Invalid(diags)) =
        Config::parse(text, Path::new("daemon.toml"), &Env::default())
    {
        assert!(diags.iter().all(|d| d.line >= 1 && d.col >= 1));
    }
});
