//! `${env:NAME}` in a dataset's params: replaced by the variable's value when the source is
//! opened, never earlier, so the value is in no config dump, status table or message.

/// `value` with every `${env:NAME}` replaced. A variable that is not set is an error naming
/// it (and the key it is for), never its would-be value.
pub fn resolve(key: &str, value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${env:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "${env:".len()..];
        let Some(end) = after.find('}') else {
            return Err(format!(
                "param `{key}`: `${{env:` without a closing `}}`; write `${{env:NAME}}`"
            ));
        };
        let name = &after[..end];
        match std::env::var(name) {
            Ok(found) => out.push_str(&found),
            Err(_) => {
                return Err(format!(
                    "param `{key}` reads environment variable `{name}`, which is not set; \
                     export it before starting accel"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether a param's value comes from the environment (and must not be shown).
pub fn is_secret(value: &str) -> bool {
    value.contains("${env:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_replaced_and_missing_ones_named() {
        let path = std::env::var("PATH").expect("PATH is set");
        assert_eq!(
            resolve("pass", "x${env:PATH}y").unwrap(),
            format!("x{path}y")
        );
        assert_eq!(resolve("pass", "plain").unwrap(), "plain");
        let error = resolve("pass", "${env:ACCEL_TEST_UNSET_VAR_9}").unwrap_err();
        assert!(error.contains("ACCEL_TEST_UNSET_VAR_9"), "{error}");
        assert!(
            resolve("pass", "${env:OPEN")
                .unwrap_err()
                .contains("closing")
        );
        assert!(is_secret("${env:X}") && !is_secret("x"));
    }
}
