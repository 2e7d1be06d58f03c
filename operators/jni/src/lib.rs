//! The JNI shim of streamml: `dev.streamml.flink.NativeBridge` in the JVM.
//!
//! Every entry point is one line that calls an `inner_*` function returning
//! `Result`; [`guard::run`] turns errors and panics into a Java
//! `dev.streamml.flink.ModelException`. Arrow crosses through the C Data
//! Interface: Java allocates `ArrowArray`/`ArrowSchema` structs and passes
//! their addresses ([`ffi`]). Single rows go through the core's one-row
//! path, encoded in direct `ByteBuffer`s that Java reuses ([`row`]). Model
//! references resolve through the core's `reference` module ([`reference`]).

mod entry;
mod ffi;
mod guard;
mod reference;
mod row;
