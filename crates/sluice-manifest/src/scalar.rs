//! Plain-scalar resolution with the YAML 1.1 rules that go-yaml v2 (and so `kubectl`) applies:
//! `yes`/`no`/`on`/`off` are booleans, `0755` is octal, `1_000` is an integer.

use serde_json::{Number, Value};

const NULLS: [&str; 5] = ["", "~", "null", "Null", "NULL"];
const TRUES: [&str; 11] = [
    "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON",
];
const FALSES: [&str; 11] = [
    "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF",
];

/// A cheap filter before the keyword tables: every null and boolean spelling is at most five
/// bytes and starts with one of these letters.
fn may_be_keyword(text: &str) -> bool {
    text.len() <= 5
        && matches!(
            text.as_bytes().first(),
            None | Some(b'~' | b'n' | b'N' | b'y' | b'Y' | b't' | b'T' | b'f' | b'F' | b'o' | b'O')
        )
}

/// Whether an untagged plain scalar would resolve to something other than a string
/// (the emitter's hot path: no allocation for ordinary text).
pub(crate) fn resolves_to_non_string(text: &str) -> bool {
    if may_be_keyword(text)
        && (NULLS.contains(&text) || TRUES.contains(&text) || FALSES.contains(&text))
    {
        return true;
    }
    let first = text.as_bytes()[0];
    (first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.'))
        && (resolve_int(text).is_some() || resolve_float(text).is_some())
}

/// Resolves an untagged plain scalar to null, bool, integer, float or string.
pub fn resolve_plain(text: &str) -> Value {
    if may_be_keyword(text) {
        if NULLS.contains(&text) {
            return Value::Null;
        }
        if TRUES.contains(&text) {
            return Value::Bool(true);
        }
        if FALSES.contains(&text) {
            return Value::Bool(false);
        }
    }
    let first = text.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.')) {
        return Value::String(text.to_owned());
    }
    if let Some(n) = resolve_int(text) {
        return Value::Number(n);
    }
    if let Some(n) = resolve_float(text) {
        return Value::Number(n);
    }
    Value::String(text.to_owned())
}

fn resolve_int(text: &str) -> Option<Number> {
    let cleaned: String = text.chars().filter(|&c| c != '_').collect();
    let (negative, digits) = match cleaned.as_bytes().first()? {
        b'-' => (true, &cleaned[1..]),
        b'+' => (false, &cleaned[1..]),
        _ => (false, cleaned.as_str()),
    };
    if digits.is_empty() {
        return None;
    }
    let (radix, body) = if let Some(rest) = digits.strip_prefix("0x").or(digits.strip_prefix("0X"))
    {
        (16, rest)
    } else if let Some(rest) = digits.strip_prefix("0o").or(digits.strip_prefix("0O")) {
        (8, rest)
    } else if let Some(rest) = digits.strip_prefix("0b").or(digits.strip_prefix("0B")) {
        (2, rest)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(body, radix).ok()?;
    if negative {
        let value = i64::try_from(magnitude)
            .ok()
            .map(|m| -m)
            .or_else(|| (magnitude == i64::MIN.unsigned_abs()).then_some(i64::MIN))?;
        Some(Number::from(value))
    } else {
        Some(Number::from(magnitude))
    }
}

fn resolve_float(text: &str) -> Option<Number> {
    let cleaned: String = text.chars().filter(|&c| c != '_').collect();
    let unsigned = cleaned.strip_prefix(['-', '+']).unwrap_or(&cleaned);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (!int.is_empty() || !frac.is_empty())
                && int.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b.is_ascii_digit())
                && !(int.is_empty() && frac.is_empty())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|b| b.is_ascii_digit()),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let digits = e.strip_prefix(['-', '+']).unwrap_or(e);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    });
    if !mantissa_ok || !exponent_ok || mantissa == "." {
        return None;
    }
    let value: f64 = cleaned.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    // Go's encoding/json prints integral float64 values without a fraction; match it so the
    // JSON we emit equals what kubectl would send.
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        return Some(Number::from(value as i64));
    }
    Number::from_f64(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_1_1_booleans_and_nulls() {
        assert_eq!(resolve_plain("yes"), json!(true));
        assert_eq!(resolve_plain("Off"), json!(false));
        assert_eq!(resolve_plain("~"), json!(null));
        assert_eq!(resolve_plain("nope"), json!("nope"));
    }

    #[test]
    fn integers_in_every_base() {
        assert_eq!(resolve_plain("42"), json!(42));
        assert_eq!(resolve_plain("-17"), json!(-17));
        assert_eq!(resolve_plain("0755"), json!(493));
        assert_eq!(resolve_plain("0x1F"), json!(31));
        assert_eq!(resolve_plain("0b101"), json!(5));
        assert_eq!(resolve_plain("1_000"), json!(1000));
        assert_eq!(resolve_plain("18446744073709551615"), json!(u64::MAX));
        assert_eq!(resolve_plain("-9223372036854775808"), json!(i64::MIN));
    }

    #[test]
    fn floats_and_lookalikes() {
        assert_eq!(resolve_plain("0.5"), json!(0.5));
        assert_eq!(resolve_plain("1e3"), json!(1000));
        assert_eq!(resolve_plain(".5"), json!(0.5));
        assert_eq!(resolve_plain("1.2.3"), json!("1.2.3"));
        assert_eq!(resolve_plain("2001-12-14"), json!("2001-12-14"));
        assert_eq!(resolve_plain("-"), json!("-"));
        assert_eq!(resolve_plain("."), json!("."));
        assert_eq!(resolve_plain("v1"), json!("v1"));
        assert_eq!(resolve_plain("100m"), json!("100m"));
    }
}
