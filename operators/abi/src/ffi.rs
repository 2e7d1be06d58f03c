//! `#[repr(C)]` mirrors of the structs in `include/streamml_model.h`.
//!
//! The Arrow structs themselves come from arrow-rs (`FFI_ArrowArray`,
//! `FFI_ArrowSchema`), which are layout-compatible with the Arrow C Data
//! Interface; the table below only refers to them by pointer.

use std::ffi::{c_char, c_void, CStr, CString};

use arrow_schema::ffi::FFI_ArrowSchema;

/// The ABI version this crate describes (`STREAMML_ABI_VERSION`).
pub const ABI_VERSION: u32 = 1;

/// The exported entry point's name, NUL-terminated for `dlsym`.
pub const MODEL_INIT_SYMBOL: &[u8] = b"streamml_model_init\0";

/// A status code returned by `init` and `predict`.
pub type StreammlStatus = i32;
/// Success.
pub const STATUS_OK: StreammlStatus = 0;
/// `init`: the binary does not speak the requested ABI version.
pub const STATUS_UNSUPPORTED_ABI: StreammlStatus = 1;
/// `predict`: the input is not what the model accepts.
pub const STATUS_INVALID_INPUT: StreammlStatus = 2;
/// Anything else: a bug, an allocation failure, a caught panic.
pub const STATUS_INTERNAL: StreammlStatus = 3;

/// Mirror of the Arrow C `struct ArrowArray`. Used by pointer only: it is
/// transmuted to and from arrow-rs' `FFI_ArrowArray`, which has this layout.
#[repr(C)]
#[derive(Debug)]
pub struct RawArrowArray {
    pub length: i64,
    pub null_count: i64,
    pub offset: i64,
    pub n_buffers: i64,
    pub n_children: i64,
    pub buffers: *mut *const c_void,
    pub children: *mut *mut RawArrowArray,
    pub dictionary: *mut RawArrowArray,
    pub release: Option<unsafe extern "C" fn(*mut RawArrowArray)>,
    pub private_data: *mut c_void,
}

/// `struct StreammlError`: a message from callee to caller.
#[repr(C)]
#[derive(Debug)]
pub struct StreammlError {
    pub message: *mut c_char,
    pub release: Option<unsafe extern "C" fn(*mut StreammlError)>,
    pub private_data: *mut c_void,
}

impl StreammlError {
    /// A zeroed error, as the caller passes it in.
    pub const fn empty() -> Self {
        Self {
            message: std::ptr::null_mut(),
            release: None,
            private_data: std::ptr::null_mut(),
        }
    }

    /// Fill this error with `message`; its `release` frees what we allocated.
    /// A message already held is released first.
    pub fn set(&mut self, message: &str) {
        if let Some(release) = self.release.take() {
            // SAFETY: the previous setter's own release function.
            unsafe { release(self) };
        }
        let clean = message.replace('\0', "\u{fffd}");
        let c = CString::new(clean).unwrap_or_default();
        self.message = c.into_raw();
        self.release = Some(release_rust_error);
        self.private_data = std::ptr::null_mut();
    }

    /// Read the message (lossy UTF-8), then release it. Returns `None` when the
    /// callee set no message.
    pub fn take_message(&mut self) -> Option<String> {
        let msg = if self.message.is_null() {
            None
        } else {
            // SAFETY: the callee promises a NUL-terminated string.
            Some(
                unsafe { CStr::from_ptr(self.message) }
                    .to_string_lossy()
                    .into_owned(),
            )
        };
        if let Some(release) = self.release.take() {
            // SAFETY: release is the callee's own function for this error.
            unsafe { release(self) };
        }
        self.message = std::ptr::null_mut();
        msg
    }
}

impl Drop for StreammlError {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            // SAFETY: the callee's release, called at most once.
            unsafe { release(self) };
        }
    }
}

unsafe extern "C" fn release_rust_error(error: *mut StreammlError) {
    if error.is_null() {
        return;
    }
    let error = &mut *error;
    if !error.message.is_null() {
        drop(CString::from_raw(error.message));
    }
    error.message = std::ptr::null_mut();
    error.release = None;
}

/// `struct StreammlModelV1`: the function table of ABI version 1.
#[repr(C)]
#[derive(Debug)]
pub struct StreammlModelV1 {
    pub abi_version: u32,
    pub private_data: *mut c_void,
    pub info: Option<unsafe extern "C" fn(*const StreammlModelV1) -> *const c_char>,
    #[allow(clippy::type_complexity)]
    pub predict: Option<
        unsafe extern "C" fn(
            *const StreammlModelV1,
            *const RawArrowArray,
            *const FFI_ArrowSchema,
            *mut RawArrowArray,
            *mut FFI_ArrowSchema,
            *mut StreammlError,
        ) -> StreammlStatus,
    >,
    pub release: Option<unsafe extern "C" fn(*mut StreammlModelV1)>,
    pub reserved: [*mut c_void; 8],
}

impl StreammlModelV1 {
    /// A zeroed table, as the host passes it to `init`.
    pub const fn empty() -> Self {
        Self {
            abi_version: 0,
            private_data: std::ptr::null_mut(),
            info: None,
            predict: None,
            release: None,
            reserved: [std::ptr::null_mut(); 8],
        }
    }
}

/// The C `struct ArrowSchema`, field by field, for reading an arrow-rs
/// `FFI_ArrowSchema` without its accessors (which allocate-free code cannot
/// use: they validate UTF-8 and measure strings on every call).
#[repr(C)]
struct RawArrowSchema {
    format: *const c_char,
    name: *const c_char,
    metadata: *const c_char,
    flags: i64,
    n_children: i64,
    children: *mut *mut RawArrowSchema,
    dictionary: *mut RawArrowSchema,
    release: Option<unsafe extern "C" fn(*mut RawArrowSchema)>,
    private_data: *mut c_void,
}

const _: () =
    assert!(std::mem::size_of::<RawArrowSchema>() == std::mem::size_of::<FFI_ArrowSchema>());

fn raw(schema: &FFI_ArrowSchema) -> &RawArrowSchema {
    // SAFETY: FFI_ArrowSchema is the C struct ArrowSchema (same size, same fields).
    unsafe { &*(schema as *const FFI_ArrowSchema as *const RawArrowSchema) }
}

/// Whether an `ArrowSchema` is released or was never filled (its `release`
/// or `format` is NULL). arrow-rs' accessors assume neither.
pub fn schema_is_released(schema: &FFI_ArrowSchema) -> bool {
    let s = raw(schema);
    s.format.is_null() || s.release.is_none()
}

/// Two NUL-terminated strings (either may be NULL) are equal.
unsafe fn same_cstr(a: *const c_char, b: *const c_char) -> bool {
    if a.is_null() || b.is_null() {
        return a.is_null() && b.is_null();
    }
    let mut i = 0;
    loop {
        let (x, y) = (*a.add(i), *b.add(i));
        if x != y {
            return false;
        }
        if x == 0 {
            return true;
        }
        i += 1;
    }
}

/// Whether two schemas have the same formats, child names and nesting,
/// compared in place (no allocation, no UTF-8 checks: cheap enough for every
/// call). The top-level name, flags and metadata are not compared, and a
/// dictionary-encoded field never matches another schema's. A schema that is
/// not released matches itself (the same pointer) without being walked.
pub fn schema_matches(schema: &FFI_ArrowSchema, expected: &FFI_ArrowSchema) -> bool {
    unsafe fn same(a: &RawArrowSchema, b: &RawArrowSchema, top: bool) -> bool {
        if a.format.is_null() || a.release.is_none() || b.format.is_null() || b.release.is_none() {
            return false;
        }
        if !same_cstr(a.format, b.format) || (!top && !same_cstr(a.name, b.name)) {
            return false;
        }
        if a.n_children != b.n_children || !a.dictionary.is_null() || !b.dictionary.is_null() {
            return false;
        }
        for i in 0..a.n_children.max(0) as usize {
            let (x, y) = (*a.children.add(i), *b.children.add(i));
            if x.is_null() || y.is_null() || !same(&*x, &*y, false) {
                return false;
            }
        }
        true
    }
    // One schema matches itself: a host handing a binary's own input layout
    // back (the one-row paths) skips the walk over every field.
    if std::ptr::eq(schema, expected) {
        return !schema_is_released(schema);
    }
    // SAFETY: both are valid schemas (checked for release before reading).
    unsafe { same(raw(schema), raw(expected), true) }
}

/// `streamml_model_init`'s signature.
pub type StreammlModelInitFn =
    unsafe extern "C" fn(u32, *mut c_void, *mut StreammlError) -> StreammlStatus;

// The transmutes between RawArrowArray and arrow-rs' FFI_ArrowArray rely on
// equal size; the field order is the Arrow specification's in both.
const _: () = assert!(
    std::mem::size_of::<RawArrowArray>() == std::mem::size_of::<arrow_data::ffi::FFI_ArrowArray>()
);
const _: () = assert!(
    std::mem::align_of::<RawArrowArray>()
        == std::mem::align_of::<arrow_data::ffi::FFI_ArrowArray>()
);

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::{DataType, Field, Fields};

    use super::*;

    fn ffi(fields: Vec<Field>) -> FFI_ArrowSchema {
        FFI_ArrowSchema::try_from(DataType::Struct(Fields::from(fields))).unwrap()
    }

    #[test]
    fn schema_matches_compares_formats_names_and_nesting() {
        let a = || {
            vec![
                Field::new("x0", DataType::Float64, false),
                Field::new("x1", DataType::Int64, true),
            ]
        };
        assert!(schema_matches(&ffi(a()), &ffi(a())));
        // Nullability is a flag, not part of the layout.
        let nullable = vec![
            Field::new("x0", DataType::Float64, true),
            Field::new("x1", DataType::Int64, true),
        ];
        assert!(schema_matches(&ffi(nullable), &ffi(a())));
        let renamed = vec![
            Field::new("x0", DataType::Float64, false),
            Field::new("x2", DataType::Int64, true),
        ];
        assert!(!schema_matches(&ffi(renamed), &ffi(a())));
        let retyped = vec![
            Field::new("x0", DataType::Float32, false),
            Field::new("x1", DataType::Int64, true),
        ];
        assert!(!schema_matches(&ffi(retyped), &ffi(a())));
        assert!(!schema_matches(&ffi(a()[..1].to_vec()), &ffi(a())));
        let list = |t| {
            vec![Field::new(
                "l",
                DataType::List(Arc::new(Field::new("item", t, true))),
                true,
            )]
        };
        assert!(schema_matches(
            &ffi(list(DataType::Float64)),
            &ffi(list(DataType::Float64))
        ));
        assert!(!schema_matches(
            &ffi(list(DataType::Float32)),
            &ffi(list(DataType::Float64))
        ));
        let dict = vec![Field::new(
            "x0",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            false,
        )];
        assert!(!schema_matches(&ffi(dict.clone()), &ffi(dict)));
        assert!(!schema_matches(&FFI_ArrowSchema::empty(), &ffi(a())));
        let same = ffi(a());
        assert!(schema_matches(&same, &same));
        let released = FFI_ArrowSchema::empty();
        assert!(!schema_matches(&released, &released));
        assert!(schema_is_released(&FFI_ArrowSchema::empty()));
    }

    #[test]
    fn errors_set_and_taken_round_trip() {
        let mut e = StreammlError::empty();
        assert_eq!(e.take_message(), None);
        e.set("first");
        e.set("bad \0 byte");
        assert_eq!(e.take_message().as_deref(), Some("bad \u{fffd} byte"));
        assert!(e.release.is_none());
    }
}
