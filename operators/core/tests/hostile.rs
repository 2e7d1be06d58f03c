//! Files that must be refused before anything in them runs: not regular
//! files, over the size cap, truncated libraries, untrusted binaries.

#[allow(dead_code)] // the helpers other test files use
mod support;

use std::path::Path;

use sha2::{Digest, Sha256};
use streamml_core::{LoadErrorKind, LoadOptions, Model, TrustList};
use support::*;

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn refused(path: &Path, options: &LoadOptions) -> String {
    let err = load_error(path, options);
    assert!(
        err.to_string().contains(&format!("'{}'", path.display())),
        "{err}"
    );
    err.kind.to_string()
}

#[test]
fn a_fifo_a_device_and_a_directory_are_refused_without_reading() {
    let dir = ScratchDir::new("fifo");
    let fifo = dir.path.join("model.so");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // No writer ever opens the FIFO: a blocking open would hang here.
    let o = LoadOptions::default();
    assert_eq!(
        refused(&fifo, &o),
        "it is a FIFO; a model binary must be a regular file"
    );
    assert_eq!(
        refused(Path::new("/dev/zero"), &o),
        "it is a character device; a model binary must be a regular file"
    );
    assert_eq!(
        refused(&dir.path, &o),
        "it is a directory; a model binary must be a regular file"
    );
}

#[test]
fn a_file_over_the_cap_is_refused() {
    let built = linear_model();
    let size = std::fs::metadata(&built.path).unwrap().len();
    let options = LoadOptions {
        max_bytes: Some(size - 1),
        ..LoadOptions::default()
    };
    let kind = refused(&built.path, &options);
    assert!(
        kind.starts_with(&format!(
            "the file has {size} bytes, over the cap of {}",
            size - 1
        )),
        "{kind}"
    );
    let exact = LoadOptions {
        max_bytes: Some(size),
        ..LoadOptions::default()
    };
    Model::load(&built.path, &exact).expect("a file of exactly the cap loads");
}

#[test]
fn truncated_libraries_are_refused_before_dlopen() {
    let built = linear_model();
    let bytes = std::fs::read(&built.path).unwrap();
    let dir = ScratchDir::new("trunc");
    for pct in (5..100).step_by(5) {
        let cut = dir.path.join(format!("cut{pct}.so"));
        std::fs::write(&cut, &bytes[..bytes.len() * pct / 100]).unwrap();
        let err = load_error(&cut, &LoadOptions::default());
        assert!(
            matches!(err.kind, LoadErrorKind::BadElf(_)),
            "{pct}%: {err}"
        );
        assert!(
            err.to_string().contains("the file is truncated"),
            "{pct}%: {err}"
        );
    }
}

#[test]
fn a_trust_list_refuses_other_binaries_before_their_code_runs() {
    // Loading this fixture aborts the process (its constructor): the test
    // passes only if the trust list refuses it before it is opened.
    let aborts = fixture("constructor_aborts");
    let good = linear_model();
    let good_sha = hex(&std::fs::read(&good.path).unwrap());
    let list =
        TrustList::parse(&format!("# ours\n{good_sha}\n"), "trust file 'models.txt'").unwrap();
    let options = LoadOptions {
        trusted: Some(list),
        ..LoadOptions::default()
    };
    Model::load(&good.path, &options).expect("a listed binary loads");
    let sha = hex(&std::fs::read(&aborts.path).unwrap());
    assert_eq!(
        refused(&aborts.path, &options),
        format!(
            "its sha256 {sha} is not in the trust file 'models.txt' (1 digest(s)); loading a binary runs \
             its code, so only listed binaries load: add the digest there if you trust this file"
        )
    );
}
