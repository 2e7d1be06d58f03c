//! Drift counters: u64 count vectors per feature and per score output over
//! bins frozen from a reference distribution (the `drift_reference` of a
//! binary's info, written by `streamml compile --reference`, or one built from
//! data at run time in the same layout).
//!
//! Counting is allocation-free per row (one cast per batch for non-float64
//! columns); counters add up across workers, partitions and windows
//! ([`DriftCounters::merge`]); statistics are computed when read
//! ([`DriftCounters::stats`], [`stats::divergence`]).

mod binning;
pub mod stats;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use serde_json::Value;

pub use binning::Binning;
pub use stats::{divergence, Divergence, EPSILON};

/// Whether a counter watches a model input or a score output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Feature,
    Score,
}

/// The counts of one feature or score.
#[derive(Debug, Clone, PartialEq)]
pub struct Counter {
    /// Name as in the reference (`probabilities[1]` for one slot of a list output).
    pub name: String,
    pub role: Role,
    pub binning: Binning,
    /// Reference counts, same layout as `counts`.
    pub reference: Vec<u64>,
    pub counts: Vec<u64>,
    column: String,
    slot: Option<usize>,
}

/// What [`DriftCounters::stats`] reports for one counter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CounterStats {
    pub rows: u64,
    pub divergence: Divergence,
    pub missing_rate: f64,
    /// Share below the first or above the last edge (numeric), else NaN.
    pub out_of_range_rate: f64,
    /// Share in the `other` bucket (categorical), else NaN.
    pub new_category_rate: f64,
}

/// A drift error: a bad reference or a batch that does not fit it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("drift: {0}")]
pub struct DriftError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, DriftError> {
    Err(DriftError(message.into()))
}

/// A counted column, as its counter reads it.
enum Values {
    F64(arrow_array::Float64Array),
    Str(arrow_array::StringArray),
}

/// Every counter of one model (or one window of one model).
#[derive(Debug, Clone, PartialEq)]
pub struct DriftCounters {
    pub counters: Vec<Counter>,
}

impl DriftCounters {
    /// Counters for a `drift_reference` document (version 1), all counts zero.
    pub fn from_reference(reference: &Value) -> Result<Self, DriftError> {
        let version = reference.get("version").and_then(Value::as_u64);
        if version != Some(1) {
            return err(format!("reference version is {version:?}; this host reads version 1"));
        }
        let mut counters = Vec::new();
        for (key, role) in [("features", Role::Feature), ("scores", Role::Score)] {
            let Some(list) = reference.get(key).and_then(Value::as_array) else {
                return err(format!("reference has no '{key}' list"));
            };
            for entry in list {
                counters.push(parse_counter(entry, role)?);
            }
        }
        Ok(Self { counters })
    }

    /// Check that every counter names a column these schemas have, of a type
    /// it can count (a slot of a fixed-size list for `name[k]` scores), so a
    /// binary whose reference would fail every batch is refused at load.
    pub fn check_columns(&self, inputs: &arrow_schema::Schema, outputs: &arrow_schema::Schema) -> Result<(), DriftError> {
        for c in &self.counters {
            let (schema, side) = match c.role {
                Role::Feature => (inputs, "inputs"),
                Role::Score => (outputs, "outputs"),
            };
            let Ok(field) = schema.field_with_name(&c.column) else {
                return err(format!("counter '{}' names column '{}', which is not among the model's {side}", c.name, c.column));
            };
            let item = match (c.slot, field.data_type()) {
                (Some(k), DataType::FixedSizeList(item, size)) if k < *size as usize => item.data_type().clone(),
                (Some(k), t) => return err(format!("counter '{}' needs slot {k} of a list, but '{}' is {t}", c.name, c.column)),
                (None, t) => t.clone(),
            };
            let empty = arrow_array::new_empty_array(&item);
            match c.binning {
                Binning::Strings { .. } => binning::as_strings(&empty).map(|_| ()),
                _ => binning::as_f64(&empty).map(|_| ()),
            }
            .map_err(|e| DriftError(format!("counter '{}': column '{}' {e}", c.name, c.column)))?;
        }
        Ok(())
    }

    /// Count the feature columns of an input batch (matched by name).
    pub fn observe(&mut self, batch: &RecordBatch) -> Result<(), DriftError> {
        self.observe_role(batch, Role::Feature)
    }

    /// Count the score columns of a model's output batch.
    pub fn observe_outputs(&mut self, batch: &RecordBatch) -> Result<(), DriftError> {
        self.observe_role(batch, Role::Score)
    }

    fn observe_role(&mut self, batch: &RecordBatch, role: Role) -> Result<(), DriftError> {
        let rows = batch.num_rows();
        // Check every column before counting any, so a bad batch changes nothing.
        let mut columns = Vec::new();
        for (i, c) in self.counters.iter().enumerate().filter(|(_, c)| c.role == role) {
            let Some(column) = batch.column_by_name(&c.column) else {
                let have: Vec<&str> = batch.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
                return err(format!("batch lacks column '{}' of counter '{}'; it has {have:?}", c.column, c.name));
            };
            let (values, stride) = match (c.slot, column.data_type()) {
                (Some(k), DataType::FixedSizeList(_, size)) if k < *size as usize => {
                    let list = column.as_fixed_size_list();
                    let values = list.values().slice(0, rows * *size as usize);
                    (values, *size as usize)
                }
                (Some(k), t) => return err(format!("column '{}' is {t}; counter '{}' needs a list of more than {k} values", c.column, c.name)),
                (None, _) => (column.clone(), 1),
            };
            let values = match c.binning {
                Binning::Strings { .. } => binning::as_strings(&values).map(Values::Str),
                _ => binning::as_f64(&values).map(Values::F64),
            }
            .map_err(|e| DriftError(format!("column '{}' {e}", c.column)))?;
            columns.push((i, values, stride));
        }
        for (i, values, stride) in columns {
            let c = &mut self.counters[i];
            match &values {
                Values::F64(v) => c.binning.observe(&mut c.counts, v, stride, c.slot.unwrap_or(0), rows),
                Values::Str(v) => c.binning.observe_strings(&mut c.counts, &v.slice(0, rows)),
            }
        }
        Ok(())
    }

    /// Add another set of counters with the same layout (another worker, partition or window).
    pub fn merge(&mut self, other: &DriftCounters) -> Result<(), DriftError> {
        if self.counters.len() != other.counters.len() {
            return err(format!("cannot merge {} counters with {}", other.counters.len(), self.counters.len()));
        }
        for (a, b) in self.counters.iter().zip(&other.counters) {
            if a.name != b.name || a.binning != b.binning {
                return err(format!("cannot merge counter '{}' with '{}': their bins differ", b.name, a.name));
            }
        }
        for (a, b) in self.counters.iter_mut().zip(&other.counters) {
            a.counts.iter_mut().zip(&b.counts).for_each(|(x, y)| *x += y);
        }
        Ok(())
    }

    /// Set one counter's counts (restoring a snapshot), checking their length.
    pub fn set_counts(&mut self, name: &str, counts: &[u64]) -> Result<(), DriftError> {
        let Some(c) = self.counters.iter_mut().find(|c| c.name == name) else {
            return err(format!("no counter named '{name}'"));
        };
        if counts.len() != c.counts.len() {
            return err(format!("counter '{name}' has {} bins, got {} counts", c.counts.len(), counts.len()));
        }
        c.counts.copy_from_slice(counts);
        Ok(())
    }

    /// Zero every count (start a new window).
    pub fn reset(&mut self) {
        self.counters.iter_mut().for_each(|c| c.counts.fill(0));
    }

    /// Statistics of every counter against its reference.
    pub fn stats(&self) -> Vec<CounterStats> {
        self.counters.iter().map(Counter::stats).collect()
    }
}

impl Counter {
    /// Statistics of this counter against its reference.
    pub fn stats(&self) -> CounterStats {
        let rows: u64 = self.counts.iter().sum();
        let share = |n: u64| if rows == 0 { f64::NAN } else { n as f64 / rows as f64 };
        let last = self.counts.len() - 1;
        let (out_of_range_rate, new_category_rate) = match &self.binning {
            Binning::Numeric { .. } => (share(self.counts[0] + self.counts[last - 1]), f64::NAN),
            Binning::Categorical { .. } | Binning::Strings { .. } => (f64::NAN, share(self.counts[last - 1])),
        };
        CounterStats {
            rows,
            divergence: divergence(&self.reference, &self.counts),
            missing_rate: share(self.counts[last]),
            out_of_range_rate,
            new_category_rate,
        }
    }
}

fn floats(entry: &Value, key: &str, name: &str) -> Result<Vec<f64>, DriftError> {
    let Some(list) = entry.get(key).and_then(Value::as_array) else {
        return err(format!("reference of '{name}' has no '{key}' list"));
    };
    list.iter()
        .map(|v| v.as_f64().ok_or_else(|| DriftError(format!("reference of '{name}': '{key}' holds {v}, not a number"))))
        .collect()
}

fn parse_counter(entry: &Value, role: Role) -> Result<Counter, DriftError> {
    let Some(name) = entry.get("name").and_then(Value::as_str) else {
        return err(format!("reference entry without a name: {entry}"));
    };
    let binning = match entry.get("kind").and_then(Value::as_str) {
        Some("numeric") => {
            let edges = floats(entry, "edges", name)?;
            if edges.windows(2).any(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less)) {
                return err(format!("reference of '{name}': edges must be strictly increasing, got {edges:?}"));
            }
            Binning::Numeric { edges }
        }
        Some("categorical") if entry.get("values").and_then(Value::as_str) == Some("utf8") => {
            let Some(list) = entry.get("categories").and_then(Value::as_array) else {
                return err(format!("reference of '{name}' has no 'categories' list"));
            };
            let mut categories = list
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(|| DriftError(format!("reference of '{name}': 'categories' holds {v}, not a string"))))
                .collect::<Result<Vec<_>, _>>()?;
            categories.sort();
            Binning::Strings { categories }
        }
        Some("categorical") => {
            let mut categories = floats(entry, "categories", name)?;
            categories.sort_by(f64::total_cmp);
            Binning::Categorical { categories }
        }
        other => return err(format!("reference of '{name}': kind is {other:?}, expected \"numeric\" or \"categorical\"")),
    };
    let reference: Vec<u64> = match entry.get("counts").and_then(Value::as_array) {
        Some(list) => list.iter().map(|v| v.as_u64().ok_or_else(|| DriftError(format!("reference of '{name}': count {v} is not a u64")))).collect::<Result<_, _>>()?,
        None => return err(format!("reference of '{name}' has no 'counts' list")),
    };
    if reference.len() != binning.len() {
        return err(format!("reference of '{name}' has {} counts; its bins need {}", reference.len(), binning.len()));
    }
    let (column, slot) = match name.strip_suffix(']').and_then(|s| s.rsplit_once('[')) {
        Some((base, k)) if role == Role::Score && k.parse::<usize>().is_ok() => (base.to_string(), k.parse().ok()),
        _ => (name.to_string(), None),
    };
    let counts = vec![0; reference.len()];
    Ok(Counter { name: name.to_string(), role, binning, reference, counts, column, slot })
}

#[cfg(test)]
mod tests;
