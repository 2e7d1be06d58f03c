//! Checks on a model file before any of it runs: it is a regular file under
//! a size cap, read without blocking (a FIFO or a device is refused from its
//! metadata, before any read), and, on Linux, a well-formed ELF shared
//! library of this machine whose program headers and loadable segments lie
//! inside the file. The system loader maps segments without checking them
//! against the file's size: a truncated library faults (SIGBUS) inside
//! `dlopen` instead of failing.
//!
//! The ELF reader is a small one of our own: it needs only the file header
//! and the program headers, and the one check that matters here (every
//! segment's bytes are in the file) is not what general ELF crates check
//! when they parse.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::LoadErrorKind;

/// The default cap on a model file's size: 256 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

/// The environment variable that sets the size cap (bytes) for every host.
pub const MAX_BYTES_ENV: &str = "STREAMML_MAX_MODEL_BYTES";

/// The cap in force: `explicit`, else `$STREAMML_MAX_MODEL_BYTES`, else the default.
pub fn max_bytes(explicit: Option<u64>) -> Result<u64, LoadErrorKind> {
    if let Some(cap) = explicit {
        return Ok(cap);
    }
    match std::env::var(MAX_BYTES_ENV) {
        Ok(v) => v.trim().parse().map_err(|_| {
            LoadErrorKind::BadOption(format!(
                "{MAX_BYTES_ENV} is '{v}'; expected a size in bytes"
            ))
        }),
        Err(_) => Ok(DEFAULT_MAX_BYTES),
    }
}

/// What kind of file a non-regular file is, for the message.
fn describe(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Read the whole file at `path` if it is a regular file of at most `cap`
/// bytes. A FIFO, a device or a directory is refused before it is opened.
pub fn read_regular(path: &Path, cap: u64) -> Result<Vec<u8>, LoadErrorKind> {
    use std::os::unix::fs::OpenOptionsExt;
    let meta = std::fs::metadata(path)?;
    if !meta.file_type().is_file() {
        return Err(LoadErrorKind::NotRegularFile(describe(&meta.file_type())));
    }
    if meta.len() > cap {
        return Err(LoadErrorKind::TooLarge {
            size: meta.len(),
            cap,
        });
    }
    // O_NONBLOCK: if the path was swapped for a FIFO since the stat, the
    // open does not wait for a writer; the fstat below then refuses it.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(LoadErrorKind::NotRegularFile(describe(&meta.file_type())));
    }
    if meta.len() > cap {
        return Err(LoadErrorKind::TooLarge {
            size: meta.len(),
            cap,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // One byte more than the cap: a file that grows while read is caught.
    (&file as &File).take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(LoadErrorKind::TooLarge {
            size: bytes.len() as u64,
            cap,
        });
    }
    Ok(bytes)
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
const MACHINE: (u16, &str) = (62, "x86-64");
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
const MACHINE: (u16, &str) = (183, "aarch64");

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const ET_DYN: u16 = 3;
const EHDR_LEN: usize = 64;
const PHDR_LEN: usize = 56;
const SHDR_LEN: usize = 64;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Check that `bytes` is an ELF shared library for this machine (64-bit,
/// little-endian) whose program headers, loadable and dynamic segments and
/// section headers lie inside the file.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
pub fn check_elf(bytes: &[u8]) -> Result<(), String> {
    let n = bytes.len() as u64;
    if bytes.len() < EHDR_LEN || &bytes[..4] != b"\x7fELF" {
        return Err("it does not start with an ELF header".into());
    }
    if bytes[4] != 2 || bytes[5] != 1 || bytes[6] != 1 {
        return Err(format!(
            "its ELF header says class {}, data {}, version {}; expected 64-bit little-endian ELF version 1",
            bytes[4], bytes[5], bytes[6]
        ));
    }
    let (e_type, machine) = (u16_at(bytes, 16), u16_at(bytes, 18));
    if e_type != ET_DYN {
        return Err(format!(
            "its ELF type is {e_type}; expected {ET_DYN} (a shared library)"
        ));
    }
    if machine != MACHINE.0 {
        return Err(format!(
            "it is built for ELF machine {machine}; this host is {} (machine {})",
            MACHINE.1, MACHINE.0
        ));
    }
    let (phoff, shoff) = (u64_at(bytes, 32), u64_at(bytes, 40));
    let (phentsize, phnum) = (u16_at(bytes, 54), u16_at(bytes, 56));
    let (shentsize, shnum) = (u16_at(bytes, 58), u16_at(bytes, 60));
    if phentsize as usize != PHDR_LEN || phnum == 0 || phnum == 0xffff {
        return Err(format!(
            "its ELF header declares {phnum} program headers of {phentsize} bytes; expected 1 to 65534 of {PHDR_LEN}"
        ));
    }
    let inside = |off: u64, len: u64| off.checked_add(len).is_some_and(|end| end <= n);
    if !inside(phoff, u64::from(phnum) * PHDR_LEN as u64) {
        return Err(format!(
            "its program headers (at {phoff}) end past the file's {n} bytes: the file is truncated"
        ));
    }
    if shoff != 0
        && (shentsize as usize != SHDR_LEN || !inside(shoff, u64::from(shnum) * SHDR_LEN as u64))
    {
        return Err(format!(
            "its section headers ({shnum} of {shentsize} bytes at {shoff}) end past the file's {n} bytes: the file is truncated"
        ));
    }
    let (mut loads, mut dynamic) = (0, false);
    for i in 0..phnum as usize {
        let at = phoff as usize + i * PHDR_LEN;
        let p_type = u32_at(bytes, at);
        let (offset, filesz, memsz) = (
            u64_at(bytes, at + 8),
            u64_at(bytes, at + 32),
            u64_at(bytes, at + 40),
        );
        if p_type != PT_LOAD && p_type != PT_DYNAMIC {
            continue;
        }
        let what = if p_type == PT_LOAD {
            "loadable segment"
        } else {
            "dynamic segment"
        };
        if !inside(offset, filesz) {
            return Err(format!(
                "its {what} {i} (bytes {offset}..{}) ends past the file's {n} bytes: the file is truncated",
                offset.saturating_add(filesz)
            ));
        }
        if p_type == PT_LOAD {
            if filesz > memsz {
                return Err(format!(
                    "its loadable segment {i} has {filesz} file bytes but {memsz} in memory"
                ));
            }
            loads += 1;
        } else {
            dynamic = true;
        }
    }
    if loads == 0 || !dynamic {
        return Err("it has no loadable or no dynamic segment; expected a shared library".into());
    }
    Ok(())
}

/// Other systems: their loaders read their own formats; no check here.
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
pub fn check_elf(_bytes: &[u8]) -> Result<(), String> {
    Ok(())
}

#[cfg(all(
    test,
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod tests {
    use super::*;

    /// A minimal well-formed header: one PT_LOAD of the whole file, one PT_DYNAMIC.
    fn elf(len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[6] = 1;
        b[16..18].copy_from_slice(&ET_DYN.to_le_bytes());
        b[18..20].copy_from_slice(&MACHINE.0.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&(PHDR_LEN as u16).to_le_bytes());
        b[56..58].copy_from_slice(&2u16.to_le_bytes());
        for (i, (t, off, sz)) in [(PT_LOAD, 0u64, len as u64), (PT_DYNAMIC, 64, 8)]
            .into_iter()
            .enumerate()
        {
            let at = 64 + i * PHDR_LEN;
            b[at..at + 4].copy_from_slice(&t.to_le_bytes());
            b[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
            b[at + 32..at + 40].copy_from_slice(&sz.to_le_bytes());
            b[at + 40..at + 48].copy_from_slice(&sz.to_le_bytes());
        }
        b
    }

    #[test]
    fn a_well_formed_header_passes() {
        check_elf(&elf(4096)).unwrap();
    }

    #[test]
    fn a_truncated_file_is_refused_by_its_loadable_segment() {
        let b = elf(4096);
        assert_eq!(
            check_elf(&b[..2048]).unwrap_err(),
            "its loadable segment 0 (bytes 0..4096) ends past the file's 2048 bytes: the file is truncated"
        );
        assert_eq!(
            check_elf(&b[..100]).unwrap_err(),
            "its program headers (at 64) end past the file's 100 bytes: the file is truncated"
        );
        assert_eq!(
            check_elf(&b[..10]).unwrap_err(),
            "it does not start with an ELF header"
        );
    }

    #[test]
    fn another_machine_class_or_type_is_refused() {
        let mut b = elf(4096);
        b[18..20].copy_from_slice(&40u16.to_le_bytes());
        assert!(check_elf(&b)
            .unwrap_err()
            .starts_with("it is built for ELF machine 40; this host is"));
        let mut c = elf(4096);
        c[4] = 1;
        assert_eq!(
            check_elf(&c).unwrap_err(),
            "its ELF header says class 1, data 1, version 1; expected 64-bit little-endian ELF version 1"
        );
        let mut e = elf(4096);
        e[16] = 2;
        assert_eq!(
            check_elf(&e).unwrap_err(),
            "its ELF type is 2; expected 3 (a shared library)"
        );
        let mut h = elf(4096);
        h[56..58].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(check_elf(&h).unwrap_err().contains("65535 program headers"));
    }

    #[test]
    fn an_overflowing_segment_offset_is_refused() {
        let mut b = elf(4096);
        b[64 + 8..64 + 16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(check_elf(&b)
            .unwrap_err()
            .contains("ends past the file's 4096 bytes"));
    }
}
