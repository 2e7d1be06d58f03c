//! How one column's values fall into the bins of the frozen layout
//! (`python/streamml/compile/drift.py` documents it).

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, ArrayRef, Float64Array, StringArray};
use arrow_schema::DataType;

/// The bins of one feature or score.
#[derive(Debug, Clone, PartialEq)]
pub enum Binning {
    /// `[underflow, [e0,e1), ..., [e(B-1),eB], overflow, missing]`; a single
    /// edge has one bin (`x == e0`); no edges has none (every value overflows).
    Numeric { edges: Vec<f64> },
    /// `[c0, ..., c(K-1), other, missing]`; categories sorted ascending.
    Categorical { categories: Vec<f64> },
    /// The same for a string column; categories sorted by their bytes.
    Strings { categories: Vec<String> },
}

impl Binning {
    /// Number of counts in this layout.
    pub fn len(&self) -> usize {
        match self {
            Binning::Numeric { edges } => self.inner_bins(edges.len()) + 3,
            Binning::Categorical { categories } => categories.len() + 2,
            Binning::Strings { categories } => categories.len() + 2,
        }
    }

    /// Whether the layout has no counts (never: missing always has one).
    pub fn is_empty(&self) -> bool {
        false
    }

    fn inner_bins(&self, edges: usize) -> usize {
        match edges {
            0 => 0,
            1 => 1,
            n => n - 1,
        }
    }

    /// Index of the `missing` count.
    pub fn missing_index(&self) -> usize {
        self.len() - 1
    }

    /// Index of one non-missing value.
    #[inline]
    pub fn index(&self, x: f64) -> usize {
        match self {
            Binning::Numeric { edges } => {
                if x.is_nan() {
                    return self.missing_index();
                }
                let (Some(&first), Some(&last)) = (edges.first(), edges.last()) else {
                    return 1; // no edges: [underflow, overflow, missing]
                };
                if x < first {
                    0
                } else if x > last {
                    self.len() - 2
                } else {
                    // bin i holds [e_i, e_{i+1}); the last bin also holds e_B.
                    let i = edges.partition_point(|&e| e <= x);
                    i.clamp(1, self.inner_bins(edges.len())) // 1 + (i - 1), underflow first
                }
            }
            Binning::Categorical { categories } => {
                if x.is_nan() {
                    return self.missing_index();
                }
                match categories.binary_search_by(|c| c.total_cmp(&x)) {
                    Ok(i) => i,
                    Err(_) => categories.len(),
                }
            }
            // A number in a string layout: no category.
            Binning::Strings { categories } => {
                if x.is_nan() {
                    self.missing_index()
                } else {
                    categories.len()
                }
            }
        }
    }

    /// Add a string column's values (nulls as missing) into `counts`; for
    /// [`Binning::Strings`] (any other layout counts every value as missing).
    pub fn observe_strings(&self, counts: &mut [u64], column: &StringArray) {
        let missing = self.missing_index();
        let Binning::Strings { categories } = self else {
            counts[missing] += column.len() as u64;
            return;
        };
        for v in column.iter() {
            let slot = match v {
                None => missing,
                Some(s) => categories.binary_search_by(|c| c.as_str().cmp(s)).unwrap_or(categories.len()),
            };
            counts[slot] += 1;
        }
    }

    /// Add a column's values (nulls and NaN as missing) into `counts`.
    ///
    /// `column` must be Float64 (callers cast other numeric types once per
    /// batch); `stride`/`offset` read one slot of a fixed-size list's values.
    pub fn observe(&self, counts: &mut [u64], column: &Float64Array, stride: usize, offset: usize, rows: usize) {
        let values = column.values();
        let missing = self.missing_index();
        match column.nulls() {
            None => {
                for r in 0..rows {
                    counts[self.index(values[r * stride + offset])] += 1;
                }
            }
            Some(nulls) => {
                for r in 0..rows {
                    let i = r * stride + offset;
                    let slot = if nulls.is_valid(i) { self.index(values[i]) } else { missing };
                    counts[slot] += 1;
                }
            }
        }
    }
}

/// A column as Utf8 (a cast for large, view and dictionary strings), or why not.
pub fn as_strings(column: &ArrayRef) -> Result<StringArray, String> {
    if let Some(a) = column.as_string_opt::<i32>() {
        return Ok(a.clone());
    }
    let data_type = column.data_type();
    let stringy = match data_type {
        DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => matches!(v.as_ref(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View),
        _ => false,
    };
    if !stringy {
        return Err(format!("is {data_type}, not a string column"));
    }
    let cast = arrow_cast::cast(column, &DataType::Utf8).map_err(|e| format!("is {data_type}; cannot read it as utf8: {e}"))?;
    Ok(cast.as_string::<i32>().clone())
}

/// A column as Float64 (a cast for any other numeric type), or why not.
pub fn as_f64(column: &ArrayRef) -> Result<Float64Array, String> {
    if let Some(a) = column.as_primitive_opt::<Float64Type>() {
        return Ok(a.clone());
    }
    let data_type = column.data_type();
    let numeric = data_type.is_numeric() || matches!(data_type, DataType::Boolean | DataType::Dictionary(_, _));
    if !numeric {
        return Err(format!("is {data_type}, not a numeric column"));
    }
    let cast = arrow_cast::cast(column, &DataType::Float64).map_err(|e| format!("is {data_type}; cannot read it as float64: {e}"))?;
    Ok(cast.as_primitive::<Float64Type>().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(b: &Binning, xs: &[Option<f64>]) -> Vec<u64> {
        let mut c = vec![0; b.len()];
        b.observe(&mut c, &Float64Array::from(xs.to_vec()), 1, 0, xs.len());
        c
    }

    #[test]
    fn numeric_bins_match_the_compile_layout() {
        // numeric_bins([0,1,2,3,nan], bins=2) -> edges [0,1.5,3], counts [0,2,2,0,1]
        let b = Binning::Numeric { edges: vec![0.0, 1.5, 3.0] };
        let got = counts(&b, &[Some(0.0), Some(1.0), Some(2.0), Some(3.0), Some(f64::NAN)]);
        assert_eq!(got, vec![0, 2, 2, 0, 1]);
        let got = counts(&b, &[Some(-1.0), Some(1.5), Some(3.5), None, Some(f64::INFINITY), Some(f64::NEG_INFINITY)]);
        assert_eq!(got, vec![2, 0, 1, 2, 1]);
    }

    #[test]
    fn one_edge_and_no_edges() {
        let one = Binning::Numeric { edges: vec![2.0] };
        assert_eq!(counts(&one, &[Some(1.0), Some(2.0), Some(3.0), None]), vec![1, 1, 1, 1]);
        let none = Binning::Numeric { edges: vec![] };
        assert_eq!(counts(&none, &[Some(1.0), None]), vec![0, 1, 1]);
    }

    #[test]
    fn categories_other_and_missing() {
        let b = Binning::Categorical { categories: vec![1.0, 3.0, 7.0] };
        let got = counts(&b, &[Some(1.0), Some(7.0), Some(7.0), Some(2.0), None, Some(f64::NAN)]);
        assert_eq!(got, vec![1, 0, 2, 1, 2]);
    }

    #[test]
    fn string_categories_other_and_missing() {
        let b = Binning::Strings { categories: vec!["".into(), "a".into(), "b".into()] };
        let mut c = vec![0; b.len()];
        b.observe_strings(&mut c, &StringArray::from(vec![Some("b"), Some(""), None, Some("zz"), Some("b")]));
        assert_eq!(c, vec![1, 0, 2, 1, 1]);
    }

    #[test]
    fn strided_reads_one_slot_of_a_list() {
        let b = Binning::Numeric { edges: vec![0.0, 0.5, 1.0] };
        let flat = Float64Array::from(vec![0.1, 0.9, 0.7, 0.3]);
        let mut c = vec![0; b.len()];
        b.observe(&mut c, &flat, 2, 1, 2); // 0.9, 0.3
        assert_eq!(c, vec![0, 1, 1, 0, 0]);
    }
}
