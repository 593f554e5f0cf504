//! Lenient integers: JSON Schema counts `5.0` as the integer 5, and so do the request types.

use serde::Deserialize;
use serde::de::{Deserializer, Error as _};
use serde_json::Number;

/// An integer from JSON, `5` or `5.0`; `None` for a fraction or a number out of range.
pub fn integer(number: &Number) -> Option<i64> {
    number.as_i64().or_else(|| {
        let float = number.as_f64()?;
        // Exactly representable and in range: the cast is exact.
        (float.fract() == 0.0 && float.abs() < 9.2e18).then_some(float as i64)
    })
}

/// `deserialize_with` for an optional integer field.
pub fn opt_int<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    match Option::<Number>::deserialize(deserializer)? {
        None => Ok(None),
        Some(number) => {
            integer(&number).map(Some).ok_or_else(|| D::Error::custom(format!("{number} is not an integer")))
        }
    }
}

/// `deserialize_with` for a list of integers.
pub fn int_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<i64>, D::Error> {
    Vec::<Number>::deserialize(deserializer)?
        .iter()
        .map(|number| integer(number).ok_or_else(|| D::Error::custom(format!("{number} is not an integer"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_floats_are_integers_and_fractions_are_not() {
        let parse = |text: &str| integer(&serde_json::from_str::<Number>(text).expect("a number"));
        assert_eq!(parse("5"), Some(5));
        assert_eq!(parse("5.0"), Some(5));
        assert_eq!(parse("-3"), Some(-3));
        assert_eq!(parse("5.5"), None);
        assert_eq!(parse("1e300"), None);
    }
}
