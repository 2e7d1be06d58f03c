//! Find the IR appended to this library's own file.

use std::path::PathBuf;

/// The last 8 bytes of a compiled binary.
pub const FOOTER_MAGIC: &[u8; 8] = b"SMLIR\0v1";

/// The path of the shared library this code was loaded from.
pub fn own_path() -> Result<PathBuf, String> {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let addr = own_path as *const libc::c_void;
    // SAFETY: dladdr only reads the address and fills `info`.
    if unsafe { libc::dladdr(addr, &mut info) } == 0 || info.dli_fname.is_null() {
        return Err("cannot find the library's own file (dladdr failed)".into());
    }
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    Ok(PathBuf::from(name.to_string_lossy().into_owned()))
}

/// The IR text appended to `bytes` (a whole library file), by the footer.
pub fn read_payload(bytes: &[u8]) -> Result<&str, String> {
    let n = bytes.len();
    if n < 16 || &bytes[n - 8..] != FOOTER_MAGIC {
        return Err("this evaluator carries no model: compile one with `streamml compile`".into());
    }
    let len = u64::from_le_bytes(bytes[n - 16..n - 8].try_into().expect("8 bytes")) as usize;
    if len > n - 16 {
        return Err(format!(
            "the model footer says {len} bytes but the file has {}",
            n - 16
        ));
    }
    std::str::from_utf8(&bytes[n - 16 - len..n - 16])
        .map_err(|e| format!("the model IR is not UTF-8: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip_and_errors() {
        let mut file = b"\x7fELF...library bytes...".to_vec();
        let ir = br#"{"format":"streamml-ir"}"#;
        file.extend_from_slice(ir);
        file.extend_from_slice(&(ir.len() as u64).to_le_bytes());
        file.extend_from_slice(FOOTER_MAGIC);
        assert_eq!(read_payload(&file).unwrap(), r#"{"format":"streamml-ir"}"#);
        assert!(read_payload(b"\x7fELF plain evaluator")
            .unwrap_err()
            .contains("carries no model"));
        let mut bad = file.clone();
        let n = bad.len();
        bad[n - 16..n - 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(read_payload(&bad).unwrap_err().contains("footer says"));
    }
}
