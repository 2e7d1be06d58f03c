//! Errors and panics of the shim, turned into Java exceptions.

use std::panic::{catch_unwind, AssertUnwindSafe};

use jni::JNIEnv;

/// The Java exception every failure becomes.
pub const MODEL_EXCEPTION: &str = "dev/streamml/flink/ModelException";

/// An error of the shim: its message becomes the Java exception's.
#[derive(Debug)]
pub struct ShimError(pub String);

impl<E: std::fmt::Display> From<E> for ShimError {
    fn from(e: E) -> Self {
        Self(e.to_string())
    }
}

pub type ShimResult<T> = Result<T, ShimError>;

/// Run `f`; on an error or a panic throw a `ModelException` (unless a Java
/// exception is already pending) and return `T::default()`, which the JVM
/// ignores because the exception is thrown on return.
pub fn run<'local, T: Default>(
    env: &mut JNIEnv<'local>,
    f: impl FnOnce(&mut JNIEnv<'local>) -> ShimResult<T>,
) -> T {
    let outcome = catch_unwind(AssertUnwindSafe(|| f(env)));
    let message = match outcome {
        Ok(Ok(value)) => return value,
        Ok(Err(ShimError(message))) => message,
        Err(panic) => format!(
            "streamml native code panicked: {}",
            streamml_abi::panic_message(&*panic)
        ),
    };
    if !env.exception_check().unwrap_or(false) {
        // Nothing more can be done if even throwing fails.
        let _ = env.throw_new(MODEL_EXCEPTION, message);
    }
    T::default()
}
