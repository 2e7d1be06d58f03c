//! Find this library's own file, whose footer carries the IR.

use std::path::PathBuf;

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
