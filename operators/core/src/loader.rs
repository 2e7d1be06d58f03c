//! Load, verify and call a model binary (ABI v1, `docs/abi.md`).
//!
//! Before anything in the binary runs, the loader checks that the file is a
//! regular file under the size cap, hashes it (and compares the hash with
//! the expected one and the trust list, when given), and checks its ELF
//! headers (`vet.rs`). Then it opens a private copy of those exact bytes,
//! looks up `streamml_model_init`, asks for ABI v1, checks the function
//! table, parses the info and checks its drift reference. Any failure is a
//! [`LoadError`] naming the file, and leaves no copy behind.
//! [`inspect_compiled`] reads a compiled binary's info from its footer
//! without loading it.

use std::ffi::CStr;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use arrow_array::ffi::{from_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::{Array, RecordBatch, StructArray};
use arrow_schema::{DataType, SchemaRef};
use sha2::{Digest, Sha256};
use streamml_abi::ffi::RawArrowArray;
use streamml_abi::{
    ModelInfo, StreammlError, StreammlModelInitFn, StreammlModelV1, ABI_VERSION, MODEL_INIT_SYMBOL,
    STATUS_OK, STATUS_UNSUPPORTED_ABI,
};

use crate::error::{LoadError, LoadErrorKind, PredictError};
use crate::backend::Backend;
use crate::error::panic_text;
use crate::trust::TrustList;

/// How to load a model binary.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Refuse the file unless its SHA-256 (lowercase hex) is this.
    pub expected_sha256: Option<String>,
    /// Refuse the file unless its SHA-256 is in this list. `None`: the list
    /// `$STREAMML_TRUSTED_MODELS` names, if set; else any file loads.
    pub trusted: Option<TrustList>,
    /// Refuse files larger than this; `None`: `$STREAMML_MAX_MODEL_BYTES`,
    /// else [`crate::vet::DEFAULT_MAX_BYTES`].
    pub max_bytes: Option<u64>,
}

/// Read the file and check it against the options, before anything runs:
/// a regular file under the cap, the expected SHA-256, the trust list.
/// Returns the bytes and their SHA-256.
fn read_checked(
    path: &Path,
    options: &LoadOptions,
    trust: bool,
) -> Result<(Vec<u8>, String), LoadError> {
    let fail = |kind: LoadErrorKind| LoadError::new(path, kind);
    let cap = crate::vet::max_bytes(options.max_bytes).map_err(fail)?;
    let bytes = crate::vet::read_regular(path, cap).map_err(fail)?;
    let sha256 = sha256_hex(&bytes);
    if let Some(expected) = &options.expected_sha256 {
        if !expected.eq_ignore_ascii_case(&sha256) {
            return Err(fail(LoadErrorKind::ShaMismatch {
                expected: expected.to_lowercase(),
                got: sha256,
            }));
        }
    }
    if trust {
        let from_env;
        let list = match &options.trusted {
            Some(list) => Some(list),
            None => {
                from_env = TrustList::from_env().map_err(|e| fail(LoadErrorKind::BadOption(e)))?;
                from_env.as_ref()
            }
        };
        if let Some(list) = list {
            if !list.allows(&sha256) {
                return Err(fail(LoadErrorKind::Untrusted {
                    sha256,
                    source_name: list.source().to_string(),
                    count: list.len(),
                }));
            }
        }
    }
    Ok((bytes, sha256))
}

/// The info of a compiled binary (`streamml compile`), read from its footer
/// and IR without loading or running it, and its SHA-256; `Ok(None)` when
/// the file is a library without a compiled footer (a hand-written binary,
/// whose info only its own code can give). The file passes the same checks
/// as [`NativeModel::load`] but the trust list: nothing of it runs.
pub fn inspect_compiled(
    path: impl AsRef<Path>,
    options: &LoadOptions,
) -> Result<Option<(ModelInfo, String)>, LoadError> {
    let path = path.as_ref();
    let fail = |kind: LoadErrorKind| LoadError::new(path, kind);
    let (bytes, sha256) = read_checked(path, options, false)?;
    crate::vet::check_elf(&bytes).map_err(|e| fail(LoadErrorKind::BadElf(e)))?;
    if !streamml_ir::has_footer(&bytes) {
        return Ok(None);
    }
    let info = streamml_ir::info_of_binary(&bytes).map_err(|e| {
        fail(LoadErrorKind::NotCompiled(format!(
            "its compiled model is invalid: {e}"
        )))
    })?;
    check_drift_reference(&info).map_err(fail)?;
    Ok(Some((info, sha256)))
}

/// A drift reference must parse and name columns the model has, of types it
/// can count: otherwise every batch of a host that counts drift would fail.
fn check_drift_reference(info: &ModelInfo) -> Result<(), LoadErrorKind> {
    let Some(reference) = &info.drift_reference else {
        return Ok(());
    };
    let inputs = info.input_schema()?;
    let outputs = info.output_schema()?;
    crate::drift::DriftCounters::from_reference(reference)
        .and_then(|c| c.check_columns(&inputs, &outputs))
        .map_err(|e| LoadErrorKind::BadDriftReference(e.0))
}

/// The SHA-256 of some bytes, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The SHA-256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    Ok(sha256_hex(&std::fs::read(path)?))
}

/// Where verified binaries are kept: `$STREAMML_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/streamml/binaries`, else `~/.cache/streamml/binaries`,
/// else the temp dir.
fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STREAMML_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("streamml").join("binaries")
}

/// Binaries kept in the cache; older ones are removed when a new one is written.
pub const MAX_CACHED: usize = 32;

/// The cache directory, created owner-only (0700). An existing directory
/// must belong to this user; it is made 0700 if it was not.
fn private_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let dir = cache_dir();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let meta = std::fs::symlink_metadata(&dir)?;
    let uid = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != uid {
        return Err(std::io::Error::other(format!(
            "the binary cache {} is not a directory of this user (uid {uid}); set STREAMML_CACHE_DIR to a private directory",
            dir.display()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(dir)
}

/// Write the exact bytes that were hashed to a private file (0600) named by
/// their hash, and return its path and whether this call wrote it. The
/// system loader keeps one copy of a library per path for the life of the
/// process, and the file at the user's path may change between hashing and
/// opening; loading the content-addressed copy means the code that runs is
/// always the code that was verified. (`dlopen` maps the file executable
/// without needing its execute bit.)
fn private_copy(bytes: &[u8], sha256: &str) -> std::io::Result<(PathBuf, bool)> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = private_dir()?;
    let suffix = std::env::consts::DLL_SUFFIX;
    let path = dir.join(format!("{sha256}{suffix}"));
    if let Ok(existing) = std::fs::read(&path) {
        if sha256_hex(&existing) == sha256 {
            return Ok((path, false));
        }
    }
    // Unique per process and call: two threads loading the same binary
    // never write into one temporary file.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{sha256}.{}.{n}.tmp", std::process::id()));
    // A stale file of a dead process with the same pid goes first, so the
    // copy is always created here, 0600.
    let _ = std::fs::remove_file(&tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|_| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    evict(&dir, &path, suffix);
    Ok((path, true))
}

/// Keep at most [`MAX_CACHED`] binaries: remove the least recently written
/// others. (A removed file stays mapped in processes that loaded it.)
fn evict(dir: &Path, keep: &Path, suffix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(suffix) && e.path() != keep)
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if files.len() < MAX_CACHED {
        return;
    }
    files.sort();
    for (_, path) in &files[..files.len() + 1 - MAX_CACHED] {
        let _ = std::fs::remove_file(path);
    }
}

/// Removes a private copy this load wrote, unless the load succeeded.
struct CopyGuard(Option<PathBuf>);

impl Drop for CopyGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The input schema exported once, read-only, shared by every call.
struct SharedSchema(FFI_ArrowSchema);
// SAFETY: the ABI says predict only reads its input schema; nobody mutates or
// releases it until the model is dropped.
unsafe impl Send for SharedSchema {}
unsafe impl Sync for SharedSchema {}

/// A loaded model binary.
pub struct NativeModel {
    path: PathBuf,
    origin: String,
    sha256: String,
    info: ModelInfo,
    input_type: DataType,
    input_schema_ffi: SharedSchema,
    output_schema: SchemaRef,
    output_schema_ffi: SharedSchema,
    /// Whether every output is fixed-width, so [`NativeModel::predict_c`] can
    /// check outputs structurally instead of importing them.
    outputs_fixed_width: bool,
    table: Box<StreammlModelV1>,
    // Never unloaded: a library may have started threads or registered
    // thread-local destructors that must outlive the model. The OS keeps one
    // copy per path however often it is loaded.
    _library: ManuallyDrop<libloading::Library>,
}

// SAFETY: the ABI requires `predict` to be re-entrant and `info` to be
// immutable; the table is written only by init and release.
unsafe impl Send for NativeModel {}
unsafe impl Sync for NativeModel {}

impl std::fmt::Debug for NativeModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeModel")
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .field("name", &self.info.name)
            .finish()
    }
}

impl NativeModel {
    /// Verify and load the binary at `path`.
    pub fn load(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let fail = |kind: LoadErrorKind| LoadError::new(path, kind);
        let (bytes, sha256) = read_checked(path, options, true)?;
        crate::vet::check_elf(&bytes).map_err(|e| fail(LoadErrorKind::BadElf(e)))?;
        let (verified, written) = private_copy(&bytes, &sha256).map_err(|e| fail(e.into()))?;
        let mut copy = CopyGuard(written.then(|| verified.clone()));
        drop(bytes);
        // SAFETY: loading a library runs its initialisers; that is what
        // loading a model binary means. The hash above says which bytes run.
        let library = unsafe { libloading::Library::new(&verified) }
            .map_err(|e| fail(LoadErrorKind::NotALibrary(dl_reason(&e, &verified))))?;
        let init: StreammlModelInitFn = unsafe {
            *library
                .get::<StreammlModelInitFn>(MODEL_INIT_SYMBOL)
                .map_err(|_| fail(LoadErrorKind::NoEntryPoint))?
        };
        let mut table = Box::new(StreammlModelV1::empty());
        let mut error = StreammlError::empty();
        let status = unsafe {
            init(
                ABI_VERSION,
                &mut *table as *mut StreammlModelV1 as *mut _,
                &mut error,
            )
        };
        if status != STATUS_OK {
            let message = error.take_message().unwrap_or_else(|| "no message".into());
            let kind = if status == STATUS_UNSUPPORTED_ABI {
                LoadErrorKind::UnsupportedAbi {
                    host: ABI_VERSION,
                    message,
                }
            } else {
                LoadErrorKind::InitFailed { status, message }
            };
            return Err(fail(kind));
        }
        // From here on the table is the model's: release it on every error.
        let guard = TableGuard(Some(table));
        let table = guard.0.as_ref().expect("set above");
        if table.abi_version != ABI_VERSION {
            return Err(fail(LoadErrorKind::UnsupportedAbi {
                host: ABI_VERSION,
                message: format!("init filled a table of version {}", table.abi_version),
            }));
        }
        let info_fn = table
            .info
            .ok_or_else(|| fail(LoadErrorKind::IncompleteTable("info")))?;
        table
            .predict
            .ok_or_else(|| fail(LoadErrorKind::IncompleteTable("predict")))?;
        table
            .release
            .ok_or_else(|| fail(LoadErrorKind::IncompleteTable("release")))?;
        let info_ptr = unsafe { info_fn(&**table) };
        if info_ptr.is_null() {
            return Err(fail(LoadErrorKind::IncompleteTable(
                "the string info() returns",
            )));
        }
        let info_json = unsafe { CStr::from_ptr(info_ptr) }.to_string_lossy();
        let info = ModelInfo::parse(&info_json).map_err(|e| fail(e.into()))?;
        let input_schema = info.input_schema().map_err(|e| fail(e.into()))?;
        let output_schema = info.output_schema().map_err(|e| fail(e.into()))?;
        let input_type = DataType::Struct(input_schema.fields().clone());
        let input_schema_ffi = FFI_ArrowSchema::try_from(&input_type).map_err(|e| {
            fail(LoadErrorKind::BadInfo(streamml_abi::InfoError::Json(
                format!("the inputs cannot be exported to the C Data Interface: {e}"),
            )))
        })?;
        let output_type = DataType::Struct(output_schema.fields().clone());
        let output_schema_ffi = FFI_ArrowSchema::try_from(&output_type).map_err(|e| {
            fail(LoadErrorKind::BadInfo(streamml_abi::InfoError::Json(
                format!("the outputs cannot be exported to the C Data Interface: {e}"),
            )))
        })?;
        check_drift_reference(&info).map_err(fail)?;
        let outputs_fixed_width = output_schema
            .fields()
            .iter()
            .all(|f| f.data_type().primitive_width().is_some());
        let table = guard.disarm();
        copy.0 = None;
        Ok(Self {
            path: path.to_path_buf(),
            origin: format!("model binary '{}'", path.display()),
            sha256,
            info,
            input_type,
            input_schema_ffi: SharedSchema(input_schema_ffi),
            output_schema,
            output_schema_ffi: SharedSchema(output_schema_ffi),
            outputs_fixed_width,
            table,
            _library: ManuallyDrop::new(library),
        })
    }

    /// The file this model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Call the binary's `predict` on a batch that already has the declared
    /// input columns and types (see [`crate::input::prepare`]).
    fn call_predict(&self, input: &RecordBatch) -> Result<RecordBatch, (Option<i32>, String)> {
        self.call_predict_inner(input).map_err(|e| match e {
            Failure::Status(status, message) => (Some(status), message),
            Failure::Host(message) => (None, message),
        })
    }

    fn call_predict_inner(&self, input: &RecordBatch) -> Result<RecordBatch, Failure> {
        let rows = input.num_rows();
        let data = StructArray::from(input.clone()).into_data();
        debug_assert_eq!(data.data_type(), &self.input_type);
        let in_array = FFI_ArrowArray::new(&data);
        let (out_array, out_schema) =
            self.call_c(&in_array)
                .map_err(|(status, message)| match status {
                    Some(status) => Failure::Status(status, message),
                    None => Failure::Host(message),
                })?;
        drop(in_array);
        let data = unsafe { from_ffi(out_array, &out_schema) }
            .map_err(|e| Failure::Host(format!("the output is not a valid Arrow array: {e}")))?;
        data.validate_full()
            .map_err(|e| Failure::Host(format!("the output is not a valid Arrow array: {e}")))?;
        if data.len() != rows {
            return Err(Failure::Host(format!(
                "the output has {} row(s) for an input of {rows}",
                data.len()
            )));
        }
        let DataType::Struct(fields) = data.data_type() else {
            return Err(Failure::Host(format!(
                "the output is {}, expected a struct array",
                data.data_type()
            )));
        };
        let expected = self.output_schema.fields();
        let same = fields.len() == expected.len()
            && fields.iter().zip(expected.iter()).all(|(got, want)| {
                got.name() == want.name() && got.data_type() == want.data_type()
            });
        if !same {
            return Err(Failure::Host(format!(
                "the output fields are {}, the info declares {}",
                describe(fields),
                describe(expected)
            )));
        }
        let (_, columns, _) = StructArray::from(data).into_parts();
        RecordBatch::try_new(self.output_schema.clone(), columns).map_err(|e| {
            Failure::Host(format!("the output does not fit the declared outputs: {e}"))
        })
    }
}

/// The C Data Interface path: no import into arrow-rs on either side.
impl NativeModel {
    /// The declared inputs as a C schema (a struct of the input fields).
    pub fn input_schema_c(&self) -> &FFI_ArrowSchema {
        &self.input_schema_ffi.0
    }

    /// Whether [`NativeModel::predict_c`] can score `input` as it is: rows
    /// to score, no null rows, no nulls (or unknown null counts) in inputs
    /// declared non-nullable. Otherwise use [`crate::Model::predict`], which
    /// maps, casts and names the offending column.
    pub fn accepts_c(&self, input: &FFI_ArrowArray) -> bool {
        if input.is_released() || input.is_empty() || input.null_count_opt() != Some(0) {
            return false;
        }
        let DataType::Struct(fields) = &self.input_type else {
            return false;
        };
        input.num_children() == fields.len()
            && fields
                .iter()
                .enumerate()
                .all(|(i, f)| f.is_nullable() || input.child(i).null_count_opt() == Some(0))
    }

    /// Score a batch that is already a C struct array of the declared input
    /// layout (its schema matches [`NativeModel::input_schema_c`] and
    /// [`NativeModel::accepts_c`] holds). The input is borrowed; the output
    /// is checked against the declared outputs and returned owned.
    ///
    /// # Safety
    /// `input` must be a valid Arrow array of the declared input layout.
    pub unsafe fn predict_c(
        &self,
        input: &FFI_ArrowArray,
    ) -> Result<(FFI_ArrowArray, FFI_ArrowSchema), PredictError> {
        let rows = input.len();
        let fail = |(status, reason): (Option<i32>, String)| PredictError {
            origin: self.origin.clone(),
            rows,
            reason,
            status,
        };
        let (array, schema) = self.call_c(input).map_err(fail)?;
        if self.outputs_fixed_width {
            self.check_fixed_width_output(&array, &schema, rows)
                .map_err(|r| fail((None, r)))?;
            return Ok((array, schema));
        }
        // Variable-width outputs: import, validate fully, export again.
        let data = from_ffi(array, &schema)
            .map_err(|e| fail((None, format!("the output is not a valid Arrow array: {e}"))))?;
        data.validate_full()
            .map_err(|e| fail((None, format!("the output is not a valid Arrow array: {e}"))))?;
        if data.len() != rows
            || data.data_type() != &DataType::Struct(self.output_schema.fields().clone())
        {
            return Err(fail((
                None,
                format!("the output is not {} rows of the declared outputs", rows),
            )));
        }
        Ok((FFI_ArrowArray::new(&data), schema))
    }

    fn call_c(
        &self,
        input: &FFI_ArrowArray,
    ) -> Result<(FFI_ArrowArray, FFI_ArrowSchema), (Option<i32>, String)> {
        let mut out_array = FFI_ArrowArray::empty();
        let mut out_schema = FFI_ArrowSchema::empty();
        let mut error = StreammlError::empty();
        let predict = self.table.predict.expect("checked at load");
        let status = unsafe {
            predict(
                &*self.table,
                input as *const FFI_ArrowArray as *const RawArrowArray,
                &self.input_schema_ffi.0,
                &mut out_array as *mut FFI_ArrowArray as *mut RawArrowArray,
                &mut out_schema,
                &mut error,
            )
        };
        if status != STATUS_OK {
            let message = error.take_message().unwrap_or_else(|| "no message".into());
            return Err((Some(status), message));
        }
        if out_array.is_released() || streamml_abi::ffi::schema_is_released(&out_schema) {
            return Err((None, "predict returned OK but no output array".into()));
        }
        Ok((out_array, out_schema))
    }

    fn check_fixed_width_output(
        &self,
        array: &FFI_ArrowArray,
        schema: &FFI_ArrowSchema,
        rows: usize,
    ) -> Result<(), String> {
        if !streamml_abi::ffi::schema_matches(schema, &self.output_schema_ffi.0) {
            let got = DataType::try_from(schema)
                .map(|t| t.to_string())
                .unwrap_or_default();
            return Err(format!(
                "the output is {got}, the info declares {}",
                describe(self.output_schema.fields())
            ));
        }
        if array.len() != rows {
            return Err(format!(
                "the output has {} row(s) for an input of {rows}",
                array.len()
            ));
        }
        if array.num_children() != self.output_schema.fields().len()
            || array.null_count_opt() != Some(0)
        {
            return Err("the output struct does not hold one child per declared output".into());
        }
        for (i, field) in self.output_schema.fields().iter().enumerate() {
            let child = array.child(i);
            let needed = array.offset() + rows;
            let data = if child.num_buffers() == 2 {
                child.buffer(1)
            } else {
                std::ptr::null()
            };
            if child.len() < needed || data.is_null() {
                return Err(format!(
                    "output '{}' is shorter than the batch or has no data",
                    field.name()
                ));
            }
            if !field.is_nullable() && child.null_count_opt() != Some(0) {
                return Err(format!(
                    "output '{}' is declared non-nullable but holds nulls",
                    field.name()
                ));
            }
        }
        Ok(())
    }
}

impl Backend for NativeModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn origin(&self) -> &str {
        &self.origin
    }

    fn sha256(&self) -> Option<&str> {
        Some(&self.sha256)
    }

    fn score(&self, input: &RecordBatch) -> Result<RecordBatch, PredictError> {
        // A malformed output can trip asserts inside arrow-rs' import: those
        // panics are this model's error, not the host's crash.
        let result =
            catch_unwind(AssertUnwindSafe(|| self.call_predict(input))).unwrap_or_else(|p| {
                Err((
                    None,
                    format!("importing the output panicked: {}", panic_text(&*p)),
                ))
            });
        result.map_err(|(status, reason)| PredictError {
            origin: self.origin.clone(),
            rows: input.num_rows(),
            reason,
            status,
        })
    }
}

impl Drop for NativeModel {
    fn drop(&mut self) {
        if let Some(release) = self.table.release.take() {
            unsafe { release(&mut *self.table) };
        }
    }
}

/// How a call failed: the model said so (with its status), or the host
/// found its output unusable.
enum Failure {
    Status(i32, String),
    Host(String),
}

/// Releases a model table if loading fails after init succeeded.
struct TableGuard(Option<Box<StreammlModelV1>>);

impl TableGuard {
    fn disarm(mut self) -> Box<StreammlModelV1> {
        self.0.take().expect("armed")
    }
}

impl Drop for TableGuard {
    fn drop(&mut self) {
        if let Some(mut table) = self.0.take() {
            if let Some(release) = table.release.take() {
                unsafe { release(&mut *table) };
            }
        }
    }
}

fn describe(fields: &arrow_schema::Fields) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect();
    format!("[{}]", parts.join(", "))
}

/// dlerror's text repeats the path; keep only the reason.
fn dl_reason(e: &libloading::Error, path: &Path) -> String {
    let text = e.to_string();
    let p = path.display().to_string();
    match text.rfind(&format!("{p}: ")) {
        Some(i) => text[i + p.len() + 2..].to_string(),
        None => text,
    }
}
