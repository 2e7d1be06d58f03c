//! The streamml model-binary ABI, version 1.
//!
//! `include/streamml_model.h` is the contract; [`ffi`] mirrors its structs for
//! Rust, and [`info`] is the typed form of the JSON document a model describes
//! itself with. Both the host (`streamml-core`) and the SDK that builds model
//! binaries (`streamml-sdk`) depend on this crate, so they cannot drift apart.

pub mod ffi;
pub mod info;

pub use ffi::{
    StreammlError, StreammlModelInitFn, StreammlModelV1, StreammlStatus, ABI_VERSION,
    MODEL_INIT_SYMBOL, STATUS_INTERNAL, STATUS_INVALID_INPUT, STATUS_OK, STATUS_UNSUPPORTED_ABI,
};
pub use info::{FieldSpec, InfoError, ModelInfo, Task};

/// The text of a caught panic's payload. Panics never cross the ABI: the SDK
/// and the host both catch them and report this text.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

/// The C header, for tools that want to ship it (for example next to a wheel).
pub const HEADER: &str = include_str!("../include/streamml_model.h");
