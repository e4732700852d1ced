//! The golden files decode to the golden values, and the values encode to the files: a change
//! of the wire types that an old peer could not read fails here (see `rollcall_protocol::golden`).
//! `ROLLCALL_BLESS_GOLDEN=1` writes the files afresh.

use rollcall_protocol::{codec::Encoding, golden};

#[test]
fn every_golden_file_decodes_to_its_value_and_back() {
    let bless = std::env::var_os("ROLLCALL_BLESS_GOLDEN").is_some();
    let mut checked = 0;
    for case in golden::cases() {
        for encoding in [Encoding::Json, Encoding::Cbor] {
            let path = case.path(encoding);
            let fresh = case.encode(encoding);
            if bless {
                std::fs::write(&path, &fresh).expect("write a golden file");
            }
            let bytes = std::fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (a new case? make its files with ROLLCALL_BLESS_GOLDEN=1)",
                    path.display()
                )
            });
            let decoded = case
                .decode(encoding, &bytes)
                .unwrap_or_else(|e| panic!("{} no longer decodes: {e}", path.display()));
            assert_eq!(decoded, case.payload, "{}", path.display());
            assert!(
                bytes == fresh,
                "{}: these types now encode the value differently; if old peers still read the \
                 new form, re-bless (ROLLCALL_BLESS_GOLDEN=1), otherwise it is a new protocol version",
                path.display()
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * golden::cases().len());
    let files = std::fs::read_dir(golden::DIR).expect("golden dir").count();
    assert_eq!(files, checked, "a golden file without a case");
}

#[test]
fn the_golden_bundle_verifies_with_its_key() {
    let key =
        rollcall_protocol::bundle::parse_public_key(&golden::bundle_signer().public_key_hex())
            .expect("key");
    let case = golden::cases()
        .into_iter()
        .find(|c| c.name == "bundle")
        .expect("bundle case");
    let bytes = std::fs::read(case.path(Encoding::Json)).expect("file");
    let bundle = rollcall_protocol::bundle::ConfigBundle::parse(&bytes).expect("parses");
    bundle.verify(&key).expect("verifies");
}
