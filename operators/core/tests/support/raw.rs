//! Call a model binary through the bare ABI, without the host's checks: for
//! what the host never sends (another ABI version, a foreign input schema, a
//! struct array with its own offset).

use std::ffi::c_void;
use std::path::Path;

use arrow_array::ffi::{from_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow_data::ArrayData;
use streamml_abi::ffi::RawArrowArray;
use streamml_abi::{
    StreammlError, StreammlModelInitFn, StreammlModelV1, StreammlStatus, MODEL_INIT_SYMBOL,
    STATUS_OK,
};

/// A status and the message that came with it.
pub type Failure = (StreammlStatus, String);

/// Call `streamml_model_init(abi_version, ...)` in the library at `path`.
/// On success returns the filled table (and keeps the library open).
pub fn init(path: &Path, abi_version: u32) -> Result<RawModel, Failure> {
    let library = unsafe { libloading::Library::new(path) }.expect("the library opens");
    let init: StreammlModelInitFn =
        *unsafe { library.get::<StreammlModelInitFn>(MODEL_INIT_SYMBOL) }.expect("init exists");
    let mut table = Box::new(StreammlModelV1::empty());
    let mut error = StreammlError::empty();
    let status = unsafe {
        init(
            abi_version,
            &mut *table as *mut StreammlModelV1 as *mut c_void,
            &mut error,
        )
    };
    if status != STATUS_OK {
        assert!(
            table.predict.is_none(),
            "a refused init leaves the table alone"
        );
        return Err((status, error.take_message().unwrap_or_default()));
    }
    Ok(RawModel {
        table,
        _library: library,
    })
}

/// An initialised model table. Released on drop.
pub struct RawModel {
    table: Box<StreammlModelV1>,
    _library: libloading::Library,
}

impl RawModel {
    /// Call predict on `input` (exported with its own schema) and import the
    /// output. On an error, also checks that the output was left released.
    pub fn predict(&self, input: &ArrayData) -> Result<ArrayData, Failure> {
        let in_schema = FFI_ArrowSchema::try_from(input.data_type()).expect("exportable type");
        let in_array = FFI_ArrowArray::new(input);
        let mut out_array = FFI_ArrowArray::empty();
        let mut out_schema = FFI_ArrowSchema::empty();
        let mut error = StreammlError::empty();
        let predict = self.table.predict.expect("init filled predict");
        let status = unsafe {
            predict(
                &*self.table,
                &in_array as *const FFI_ArrowArray as *const RawArrowArray,
                &in_schema,
                &mut out_array as *mut FFI_ArrowArray as *mut RawArrowArray,
                &mut out_schema,
                &mut error,
            )
        };
        assert!(
            !in_array.is_released(),
            "the model released its borrowed input"
        );
        if status != STATUS_OK {
            assert!(
                out_array.is_released(),
                "a failed predict left an output array"
            );
            return Err((status, error.take_message().unwrap_or_default()));
        }
        let data = unsafe { from_ffi(out_array, &out_schema) }.expect("a valid output");
        data.validate_full().expect("a valid output");
        Ok(data)
    }
}

impl Drop for RawModel {
    fn drop(&mut self) {
        if let Some(release) = self.table.release.take() {
            unsafe { release(&mut *self.table) };
        }
    }
}
