//! The footer of a compiled binary: the IR appended to the evaluator
//! library, its SHA-256, its length, and a magic (`docs/ir.md`, "The binary").

use sha2::{Digest, Sha256};

/// The last 8 bytes of a compiled binary (footer version 2).
pub const FOOTER_MAGIC: &[u8; 8] = b"SMLIR\0v2";
/// Footer version 1 (no checksum), refused.
pub const FOOTER_MAGIC_V1: &[u8; 8] = b"SMLIR\0v1";
/// SHA-256 of the IR (32 bytes), IR length (u64 LE), magic.
pub const FOOTER_LEN: usize = 32 + 8 + 8;

/// Whether `bytes` (a whole file) ends in a compiled binary's footer, of
/// any version.
pub fn has_footer(bytes: &[u8]) -> bool {
    let n = bytes.len();
    n >= 8 && (&bytes[n - 8..] == FOOTER_MAGIC || &bytes[n - 8..] == FOOTER_MAGIC_V1)
}

/// `ir` followed by its footer, to append to the evaluator library.
pub fn footer_for(ir: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ir.len() + FOOTER_LEN);
    out.extend_from_slice(ir);
    out.extend_from_slice(&Sha256::digest(ir));
    out.extend_from_slice(&(ir.len() as u64).to_le_bytes());
    out.extend_from_slice(FOOTER_MAGIC);
    out
}

/// The IR text appended to `bytes` (a whole library file), after checking
/// the footer's length and the IR's SHA-256.
pub fn read_payload(bytes: &[u8]) -> Result<&str, String> {
    let n = bytes.len();
    if n >= 8 && &bytes[n - 8..] == FOOTER_MAGIC_V1 {
        return Err(
            "the binary was compiled by an older streamml (footer v1, no IR checksum); \
             re-compile the model with `streamml compile`"
                .into(),
        );
    }
    if n < FOOTER_LEN || &bytes[n - 8..] != FOOTER_MAGIC {
        return Err("this evaluator carries no model: compile one with `streamml compile`".into());
    }
    let len = u64::from_le_bytes(bytes[n - 16..n - 8].try_into().expect("8 bytes"));
    let room = (n - FOOTER_LEN) as u64;
    if len > room {
        return Err(format!(
            "the model footer says the IR has {len} bytes but only {room} precede the footer; \
             the file is truncated or corrupt"
        ));
    }
    let start = n - FOOTER_LEN - len as usize;
    let ir = &bytes[start..n - FOOTER_LEN];
    let stored = &bytes[n - FOOTER_LEN..n - 16];
    let actual = Sha256::digest(ir);
    if stored != actual.as_slice() {
        return Err(format!(
            "the model IR's sha256 is {}, the footer says {}; the IR was edited or damaged \
             after `streamml compile`: re-compile the model",
            hex(&actual),
            hex(stored)
        ));
    }
    std::str::from_utf8(ir).map_err(|e| format!("the model IR is not UTF-8: {e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(ir: &[u8]) -> Vec<u8> {
        let mut f = b"\x7fELF...library bytes...".to_vec();
        f.extend_from_slice(&footer_for(ir));
        f
    }

    #[test]
    fn payload_round_trip() {
        let f = file(br#"{"format":"streamml-ir"}"#);
        assert!(has_footer(&f));
        assert_eq!(read_payload(&f).unwrap(), r#"{"format":"streamml-ir"}"#);
    }

    #[test]
    fn no_footer_a_v1_footer_and_a_bad_length_are_refused() {
        assert!(!has_footer(b"\x7fELF plain evaluator"));
        assert!(read_payload(b"\x7fELF plain evaluator")
            .unwrap_err()
            .contains("carries no model"));
        let mut v1 = b"\x7fELF{}".to_vec();
        v1.extend_from_slice(&2u64.to_le_bytes());
        v1.extend_from_slice(FOOTER_MAGIC_V1);
        assert!(has_footer(&v1));
        let e = read_payload(&v1).unwrap_err();
        assert!(e.contains("footer v1") && e.contains("re-compile"), "{e}");
        let mut bad = file(b"{}");
        let n = bad.len();
        bad[n - 16..n - 8].copy_from_slice(&u64::MAX.to_le_bytes());
        let e = read_payload(&bad).unwrap_err();
        assert!(
            e.contains(&format!("says the IR has {} bytes", u64::MAX)),
            "{e}"
        );
    }

    #[test]
    fn an_edited_ir_fails_its_checksum_naming_both_digests() {
        let mut f = file(br#"{"threshold":1.5}"#);
        let at = f.iter().position(|&b| b == b'5').unwrap();
        f[at] = b'6';
        let e = read_payload(&f).unwrap_err();
        let want = hex(&Sha256::digest(br#"{"threshold":1.6}"#));
        let stored = hex(&Sha256::digest(br#"{"threshold":1.5}"#));
        assert_eq!(
            e,
            format!(
                "the model IR's sha256 is {want}, the footer says {stored}; the IR was edited \
                 or damaged after `streamml compile`: re-compile the model"
            )
        );
    }
}
