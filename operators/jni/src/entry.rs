//! The native methods of `dev.streamml.flink.NativeBridge`.
//!
//! A model handle is a `Box<Model>` turned into a `jlong`; Java owns it and
//! gives it back exactly once to `release`. A row scorer handle
//! (`rowOpen`, [`row`]) is the same for a `Box<RowHandle>`; it holds its own
//! reference to the model.

use jni::objects::{JByteBuffer, JClass, JDoubleArray, JString};
use jni::sys::{jboolean, jbyteArray, jint, jlong, jstring};
use jni::JNIEnv;
use streamml_core::{LoadOptions, Model, TrustList};

use crate::ffi;
use crate::guard::{run, ShimError, ShimResult};
use crate::row;

pub(crate) fn model<'a>(handle: jlong) -> ShimResult<&'a Model> {
    if handle == 0 {
        return Err(ShimError("the model is closed (handle 0)".into()));
    }
    // SAFETY: a non-zero handle is a live `Box<Model>` from `inner_load`;
    // Java never passes it after `release`.
    Ok(unsafe { &*(handle as *const Model) })
}

pub(crate) fn optional_string(env: &mut JNIEnv<'_>, value: &JString<'_>) -> ShimResult<Option<String>> {
    if value.is_null() {
        return Ok(None);
    }
    Ok(Some(env.get_string(value)?.into()))
}

#[no_mangle]
pub extern "system" fn Java_dev_streamml_flink_NativeBridge_load<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    path: JString<'l>,
    sha256: JString<'l>,
    trusted_file: JString<'l>,
) -> jlong {
    run(&mut env, |env| inner_load(env, &path, &sha256, &trusted_file))
}

fn inner_load(
    env: &mut JNIEnv<'_>,
    path: &JString<'_>,
    sha256: &JString<'_>,
    trusted_file: &JString<'_>,
) -> ShimResult<jlong> {
    let path =
        optional_string(env, path)?.ok_or_else(|| ShimError("the model path is null".into()))?;
    let trusted = match optional_string(env, trusted_file)? {
        Some(f) => Some(TrustList::from_file(std::path::Path::new(&f)).map_err(|e| {
            ShimError(format!("cannot load model binary '{path}': {e}"))
        })?),
        None => None,
    };
    let options = LoadOptions {
        expected_sha256: optional_string(env, sha256)?,
        trusted,
        max_bytes: None,
    };
    let model = Model::load(&path, &options)?;
    Ok(Box::into_raw(Box::new(model)) as jlong)
}

#[no_mangle]
pub extern "system" fn Java_dev_streamml_flink_NativeBridge_infoJson<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
) -> jstring {
    run(&mut env, |env| inner_info_json(env, handle))
}

fn inner_info_json(env: &mut JNIEnv<'_>, handle: jlong) -> ShimResult<jstring> {
    let json = model(handle)?.info().to_json();
    Ok(env.new_string(json)?.into_raw())
}

#[no_mangle]
pub extern "system" fn Java_dev_streamml_flink_NativeBridge_sha256<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
) -> jstring {
    run(&mut env, |env| inner_sha256(env, handle))
}

fn inner_sha256(env: &mut JNIEnv<'_>, handle: jlong) -> ShimResult<jstring> {
    let sha = model(handle)?.sha256().unwrap_or_default().to_string();
    Ok(env.new_string(sha)?.into_raw())
}

#[no_mangle]
pub extern "system" fn Java_dev_streamml_flink_NativeBridge_inputSchema<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    out_schema: jlong,
) {
    run(&mut env, |_| inner_schema(handle, out_schema, true))
}

#[no_mangle]
pub extern "system" fn Java_dev_streamml_flink_NativeBridge_outputSchema<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    out_schema: jlong,
) {
    run(&mut env, |_| inner_schema(handle, out_schema, false))
}

fn inner_schema(handle: jlong, out_schema: jlong, inputs: bool) -> ShimResult<()> {
    let model = model(handle)?;
    let schema = if inputs {
        model.input_schema()
    } else {
        model.output_schema()
    };
    // SAFETY: Java passes the address of an empty ArrowSchema it allocated.
    unsafe { ffi::give_schema(schema, out_schema) }
}

#[no_mangle]
pub extern "system" fn Java_dev_streamml_flink_NativeBridge_predict<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    in_array: jlong,
    in_schema: jlong,
    out_array: jlong,
    out_schema: jlong,
) {
    run(&mut env, |_| {
        inner_predict(handle, in_array, in_schema, out_array, out_schema)
    })
}

fn inner_predict(
    handle: jlong,
    in_array: jlong,
    in_schema: jlong,
    out_array: jlong,
    out_schema: jlong,
) -> ShimResult<()> {
    let model = model(handle)?;
    // SAFETY: Java exported a batch into these structs and hands them over.
    let (array, schema) = unsafe { ffi::take_input(in_array, in_schema)? };
    // What Java exported is checked before anything reads it.
    streamml_core::input::check_c_array(&array, &schema).map_err(|e| ShimError(e.to_string()))?;
    // The zero-copy path when the batch is exactly the declared layout.
    // SAFETY: the array and schema describe each other (Java exported both).
    let output = match unsafe { model.try_predict_c(&schema, &array) } {
        Some(result) => result?,
        None => ffi::export_batch(model.predict(&ffi::import_batch(array, &schema)?)?)?,
    };
    // SAFETY: Java passes the addresses of empty structs it allocated.
    unsafe { ffi::give_output(output, out_array, out_schema) }
}

#[no_mangle]
pub extern "system" fn Java_dev_streamml_flink_NativeBridge_release<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
) {
    run(&mut env, |_| inner_release(handle))
}

fn inner_release(handle: jlong) -> ShimResult<()> {
    if handle != 0 {
        // SAFETY: the handle came from `inner_load` and Java releases it once.
        drop(unsafe { Box::from_raw(handle as *mut Model) });
    }
    Ok(())
}

#[no_mangle]
pub extern "system" fn Java_dev_streamml_flink_NativeBridge_rowOpen<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    absent_is_null: jboolean,
) -> jlong {
    run(&mut env, |_| row::open(model(handle)?, absent_is_null != 0))
}

#[no_mangle]
pub extern "system" fn Java_dev_streamml_flink_NativeBridge_rowScore<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    input: JByteBuffer<'l>,
    length: jint,
    output: JByteBuffer<'l>,
) -> jint {
    run(&mut env, |env| row::score(env, row::handle(handle)?, &input, length, &output))
}

#[no_mangle]
pub extern "system" fn Java_dev_streamml_flink_NativeBridge_rowScoreDoubles<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    values: JDoubleArray<'l>,
    length: jint,
    output: JByteBuffer<'l>,
) -> jint {
    run(&mut env, |env| row::score_doubles(env, row::handle(handle)?, &values, length, &output))
}

#[no_mangle]
pub extern "system" fn Java_dev_streamml_flink_NativeBridge_rowError<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
) -> jstring {
    run(&mut env, |env| inner_row_error(env, handle))
}

fn inner_row_error(env: &mut JNIEnv<'_>, handle: jlong) -> ShimResult<jstring> {
    let error = row::handle(handle)?.error();
    Ok(env.new_string(error)?.into_raw())
}

#[no_mangle]
pub extern "system" fn Java_dev_streamml_flink_NativeBridge_rowRelease<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
) {
    run(&mut env, |_| {
        row::release(handle);
        Ok(())
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_streamml_flink_NativeBridge_scoreRows<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    input: JByteBuffer<'l>,
    length: jint,
    rows: jint,
    absent_is_null: jboolean,
) -> jbyteArray {
    run(&mut env, |env| {
        let missing = row::missing(absent_is_null != 0);
        let out = row::score_rows(env, model(handle)?, &input, length, rows, missing)?;
        Ok(env.byte_array_from_slice(&out)?.into_raw())
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_streamml_flink_NativeBridge_scoreRowsDoubles<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    values: JDoubleArray<'l>,
    rows: jint,
    width: jint,
) -> jbyteArray {
    run(&mut env, |env| {
        let out = row::score_rows_doubles(env, model(handle)?, &values, rows, width)?;
        Ok(env.byte_array_from_slice(&out)?.into_raw())
    })
}
