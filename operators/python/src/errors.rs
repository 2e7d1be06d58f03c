//! Core errors as the exceptions defined in `streamml/errors.py`.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use streamml_core::{Error, InputError, LoadError, PredictError};

/// Which exception of `streamml.errors` to raise.
#[derive(Clone, Copy)]
pub enum Kind {
    Load,
    Input,
    Predict,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Load => "ModelLoadError",
            Kind::Input => "InputError",
            Kind::Predict => "PredictError",
        }
    }
}

static CLASSES: [PyOnceLock<Py<PyType>>; 3] =
    [PyOnceLock::new(), PyOnceLock::new(), PyOnceLock::new()];

/// A `streamml.errors` exception carrying `message`.
pub fn new_err(kind: Kind, message: impl Into<String>) -> PyErr {
    let message = message.into();
    Python::attach(|py| {
        let class = CLASSES[kind as usize].get_or_try_init(py, || -> PyResult<Py<PyType>> {
            let module = py.import("streamml.errors")?;
            Ok(module.getattr(kind.name())?.cast_into::<PyType>()?.unbind())
        });
        match class {
            Ok(class) => PyErr::from_type(class.bind(py).clone(), message),
            Err(e) => e,
        }
    })
}

pub fn load_err(e: LoadError) -> PyErr {
    new_err(Kind::Load, e.to_string())
}

pub fn input_err(e: InputError) -> PyErr {
    new_err(Kind::Input, e.to_string())
}

pub fn predict_err(e: PredictError) -> PyErr {
    new_err(Kind::Predict, e.to_string())
}

pub fn core_err(e: Error) -> PyErr {
    match e {
        Error::Load(e) => load_err(e),
        Error::Input(e) => input_err(e),
        Error::Predict(e) => predict_err(e),
    }
}
