//! Parameter counts written as an integer or with a size suffix: `8B`, `1.5B`, `560M`.

use std::fmt;

use schemars::{Schema, SchemaGenerator};
use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde_json::{Map, Value, json};

const EXPECTING: &str = "a parameter count: an integer or a number with a suffix K, M, B or T, like \"8B\" or \"1.5B\"";

/// Parses a parameter count: a plain integer (`8030000000`) or a decimal number with a suffix `K` (thousand), `M`
/// (million), `B` (billion) or `T` (trillion), case-insensitive (`8B`, `70b`, `1.5B`, `560M`). The result must be a
/// whole number of parameters (`1.5B` is fine, `1.0000000005B` is not).
pub fn parse_parameters(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid parameter count \"{s}\": expected an integer or a number with a suffix K, M, B or T");
    let (number, mult): (&str, u128) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mult = match c.to_ascii_uppercase() {
                'K' => 1_000,
                'M' => 1_000_000,
                'B' => 1_000_000_000,
                'T' => 1_000_000_000_000,
                _ => return Err(bad()),
            };
            (&s[..i], mult)
        }
        Some(_) => (s, 1),
        None => return Err(bad()),
    };
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || (number.contains('.') && frac.is_empty()) {
        return Err(bad());
    }
    let too_large = || format!("parameter count \"{s}\" is too large");
    let int: u128 = int.parse().map_err(|_| too_large())?;
    let mut value = int.checked_mul(mult).ok_or_else(too_large)?;
    if !frac.is_empty() {
        let scale = u32::try_from(frac.len())
            .ok()
            .and_then(|n| 10u128.checked_pow(n))
            .ok_or_else(bad)?;
        let frac: u128 = frac.parse().map_err(|_| bad())?;
        let scaled = frac.checked_mul(mult).ok_or_else(too_large)?;
        if scaled % scale != 0 {
            return Err(format!("parameter count \"{s}\" is not a whole number of parameters"));
        }
        value = value.checked_add(scaled / scale).ok_or_else(too_large)?;
    }
    u64::try_from(value).map_err(|_| too_large())
}

/// serde `deserialize_with` for `ModelSpec::parameters`.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(ParamsVisitor)
}

struct ParamsVisitor;

impl Visitor<'_> for ParamsVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTING)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        // `8e9` is a float in YAML; accept it when it is a whole, representable count.
        if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 18_446_744_073_709_551_616.0 {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok(v as u64)
        } else {
            Err(E::invalid_value(Unexpected::Float(v), &self))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        parse_parameters(v).map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
    }
}

/// JSON schema of `parameters`: Kubernetes' int-or-string.
pub(crate) fn schema(_: &mut SchemaGenerator) -> Schema {
    let mut m = Map::new();
    m.insert(
        "description".into(),
        Value::String(
            "Parameter count: an integer, or a number with a suffix K, M, B or T such as \"8B\", \"1.5B\" or \"560M\"."
                .into(),
        ),
    );
    m.insert("x-kubernetes-int-or-string".into(), Value::Bool(true));
    m.insert("anyOf".into(), json!([{ "type": "integer" }, { "type": "string" }]));
    Schema::from(m)
}

#[cfg(test)]
mod tests {
    use super::parse_parameters;

    #[test]
    fn suffixes() {
        assert_eq!(parse_parameters("8B"), Ok(8_000_000_000));
        assert_eq!(parse_parameters("70b"), Ok(70_000_000_000));
        assert_eq!(parse_parameters("1.5B"), Ok(1_500_000_000));
        assert_eq!(parse_parameters("7.6B"), Ok(7_600_000_000));
        assert_eq!(parse_parameters("560M"), Ok(560_000_000));
        assert_eq!(parse_parameters("125k"), Ok(125_000));
        assert_eq!(parse_parameters("1.8T"), Ok(1_800_000_000_000));
        assert_eq!(parse_parameters("8030261248"), Ok(8_030_261_248));
        assert_eq!(parse_parameters("0.5B"), Ok(500_000_000));
    }

    #[test]
    fn rejects() {
        for bad in ["", "B", "8Q", "1.5", ".5B", "8.B", "-8B", "8 B", "1,5B", "8BB", "x8B"] {
            assert!(parse_parameters(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_parameters("1.0000000005B"),
            Err("parameter count \"1.0000000005B\" is not a whole number of parameters".into())
        );
        assert_eq!(
            parse_parameters("99999999999T"),
            Err("parameter count \"99999999999T\" is too large".into())
        );
    }
}
