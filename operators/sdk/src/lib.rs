//! Write a streamml model binary in Rust.
//!
//! Implement [`Model`] for a type and name a constructor with
//! [`export_model!`]; built as a `cdylib`, the crate is a model binary that
//! any streamml host loads (ABI v1, see `docs/abi.md`). The SDK does the
//! C side: the entry point, importing the borrowed input, checking and
//! exporting the output, turning errors and panics into status codes.
//!
//! ```
//! use std::sync::Arc;
//!
//! use streamml_sdk::arrow_array::{ArrayRef, Float64Array};
//! use streamml_sdk::{export_model, FieldSpec, Input, Model, ModelInfo, PredictError, Task};
//!
//! struct Doubler;
//!
//! impl Model for Doubler {
//!     fn info(&self) -> ModelInfo {
//!         ModelInfo {
//!             abi_version: streamml_sdk::ABI_VERSION,
//!             name: "doubler".into(),
//!             version: "1.0.0".into(),
//!             task: Task::Regression,
//!             framework: "rust-sdk".into(),
//!             inputs: vec![FieldSpec::new("x", "float64", false)],
//!             outputs: vec![FieldSpec::new("y", "float64", false)],
//!             drift_reference: None,
//!             metadata: Default::default(),
//!         }
//!     }
//!
//!     fn predict(&self, input: &Input<'_>) -> Result<Vec<ArrayRef>, PredictError> {
//!         let x = input.float64(0)?; // the host's buffer, read in place
//!         Ok(vec![Arc::new(Float64Array::from_iter_values(x.iter().map(|v| v * 2.0)))])
//!     }
//! }
//!
//! export_model!(Doubler);
//! # assert_eq!(Doubler.info().validate(), Ok(()));
//! ```

mod columns;
mod export;

pub use columns::{Input, Utf8Column};
pub use export::PredictError;
pub use streamml_abi::{FieldSpec, ModelInfo, Task, ABI_VERSION};

/// Re-exported so that model crates need no arrow dependency of their own.
pub use arrow_array;
pub use arrow_schema;

use arrow_array::ArrayRef;

/// A model that streamml hosts can run.
///
/// Implementations must be thread-safe: hosts call `predict` from many
/// threads at once.
pub trait Model: Send + Sync + 'static {
    /// The info document. Called once, when the host initialises the binary.
    fn info(&self) -> ModelInfo;

    /// Score one batch.
    ///
    /// `input` holds exactly the declared input fields, in declared order and
    /// with the declared types (the host maps and casts before calling): read
    /// fixed-width columns in place with [`Input::values`] / [`Input::float64`],
    /// or everything through [`Input::record_batch`]. Return one array per
    /// declared output field, each with `input.num_rows()` rows.
    fn predict(&self, input: &Input<'_>) -> Result<Vec<ArrayRef>, PredictError>;
}

/// Export a [`Model`] as this library's `streamml_model_init` entry point.
///
/// `export_model!(expr)`: `expr` builds the model. `export_model!(try expr)`:
/// `expr` is a `Result<M, String>`, and an `Err` makes init fail with that
/// message (the host reports it, naming the file). Either runs once per
/// `init` call, that is once per host load.
#[macro_export]
macro_rules! export_model {
    (try $model:expr) => {
        /// The streamml ABI entry point (see `streamml_model.h`).
        ///
        /// # Safety
        /// Called by a streamml host with pointers as the ABI describes.
        #[no_mangle]
        pub unsafe extern "C" fn streamml_model_init(
            abi_version: u32,
            out_model: *mut ::std::ffi::c_void,
            error: *mut $crate::__private::StreammlError,
        ) -> i32 {
            $crate::__private::init(abi_version, out_model, error, || {
                $model.map(|m| ::std::boxed::Box::new(m) as ::std::boxed::Box<dyn $crate::Model>)
            })
        }
    };
    ($model:expr) => {
        $crate::export_model!(try ::std::result::Result::<_, ::std::string::String>::Ok($model));
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::export::init;
    pub use streamml_abi::StreammlError;
}
