//! Model references for the JVM: `NativeBridge.resolveReference`,
//! `NativeBridge.setAlias` and `NativeBridge.version` over the core's
//! `reference` module, so the Flink connector reads a model directory
//! exactly as the Python hosts do (`docs/lifecycle.md`).

use jni::objects::{JClass, JObject, JString};
use jni::sys::{jlong, jobjectArray, jstring};
use jni::JNIEnv;
use streamml_core::ModelRef;

use crate::entry::{model, optional_string};
use crate::guard::{run, ShimError, ShimResult};

fn required(env: &mut JNIEnv<'_>, value: &JString<'_>, what: &str) -> ShimResult<String> {
    optional_string(env, value)?.ok_or_else(|| ShimError(format!("the {what} is null")))
}

#[no_mangle]
pub extern "system" fn Java_dev_streamml_flink_NativeBridge_resolveReference<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    reference: JString<'l>,
    max_bytes: jlong,
) -> jobjectArray {
    run(&mut env, |env| inner_resolve(env, &reference, max_bytes))
}

/// `{kind, path, sha256, version or null}`; `kind` is `file` or `directory`.
/// `max_bytes <= 0` means the loader's cap.
fn inner_resolve(
    env: &mut JNIEnv<'_>,
    reference: &JString<'_>,
    max_bytes: jlong,
) -> ShimResult<jobjectArray> {
    let reference = required(env, reference, "model reference")?;
    let parsed = ModelRef::parse(&reference);
    let kind = match parsed {
        ModelRef::File(_) => "file",
        ModelRef::Directory { .. } => "directory",
    };
    let cap = u64::try_from(max_bytes).ok().filter(|b| *b > 0);
    let resolved = parsed.resolve(cap)?;
    let path = resolved.path.to_string_lossy().into_owned();
    let values = [
        Some(kind.to_string()),
        Some(path),
        Some(resolved.sha256),
        resolved.version,
    ];
    strings(env, &values)
}

#[no_mangle]
pub extern "system" fn Java_dev_streamml_flink_NativeBridge_parseReference<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    reference: JString<'l>,
) -> jobjectArray {
    run(&mut env, |env| inner_parse(env, &reference))
}

/// `{kind, where, alias or null}` without reading any file but the
/// directory entry.
fn inner_parse(env: &mut JNIEnv<'_>, reference: &JString<'_>) -> ShimResult<jobjectArray> {
    let reference = required(env, reference, "model reference")?;
    let values = match ModelRef::parse(&reference) {
        ModelRef::File(path) => vec![
            Some("file".to_string()),
            Some(path.to_string_lossy().into_owned()),
            None,
        ],
        ModelRef::Directory { dir, alias } => vec![
            Some("directory".to_string()),
            Some(dir.to_string_lossy().into_owned()),
            Some(alias),
        ],
    };
    strings(env, &values)
}

/// A `String[]` of `values` (`None`: a null element).
fn strings(env: &mut JNIEnv<'_>, values: &[Option<String>]) -> ShimResult<jobjectArray> {
    let array = env.new_object_array(values.len() as i32, "java/lang/String", JObject::null())?;
    for (i, value) in values.iter().enumerate() {
        if let Some(text) = value {
            let s = env.new_string(text)?;
            env.set_object_array_element(&array, i as i32, s)?;
        }
    }
    Ok(array.into_raw())
}

#[no_mangle]
pub extern "system" fn Java_dev_streamml_flink_NativeBridge_setAlias<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    dir: JString<'l>,
    alias: JString<'l>,
    version: JString<'l>,
) {
    run(&mut env, |env| inner_set_alias(env, &dir, &alias, &version))
}

fn inner_set_alias(
    env: &mut JNIEnv<'_>,
    dir: &JString<'_>,
    alias: &JString<'_>,
    version: &JString<'_>,
) -> ShimResult<()> {
    let dir = required(env, dir, "model directory")?;
    let alias = required(env, alias, "alias")?;
    let version = required(env, version, "version")?;
    streamml_core::reference::set_alias(std::path::Path::new(&dir), &alias, &version)?;
    Ok(())
}

#[no_mangle]
pub extern "system" fn Java_dev_streamml_flink_NativeBridge_version<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
) -> jstring {
    run(&mut env, |env| inner_version(env, handle))
}

/// The version the binary's own info names.
fn inner_version(env: &mut JNIEnv<'_>, handle: jlong) -> ShimResult<jstring> {
    let version = model(handle)?.info().version.clone();
    Ok(env.new_string(version)?.into_raw())
}
