//! JSON Schema assertions: a schema file beside the journey, compiled once when the journey is
//! loaded (so a missing or broken schema is a mistake in the file, located), applied to a value
//! of each answer.
//!
//! Compiled offline: a `$ref` is followed within the file only, never fetched from the network
//! or the disk, so loading a journey sends nothing anywhere and reads nothing but its schema.

use serde_json::Value;
use std::fmt;
use std::sync::Arc;

/// A compiled JSON Schema and the file it came from (which names it in messages).
#[derive(Clone)]
pub struct Schema {
    file: String,
    validator: Arc<jsonschema::Validator>,
}

/// One way a value fails a schema: where in the value (a JSON pointer, `""` for the value
/// itself) and what is wrong there. The message may quote the value: scrub it before it leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaError {
    pub at: String,
    pub message: String,
}

impl Schema {
    /// Compiles the schema `text` read from `file`; the error is one plain sentence.
    pub fn compile(file: &str, text: &str) -> Result<Self, String> {
        let document: Value = serde_json::from_str(text).map_err(|e| format!("schema {file:?} is not JSON: {e}"))?;
        let validator = jsonschema::options().offline().build(&document).map_err(|e| {
            let why = crate::text::one_line(&e.to_string());
            format!("schema {file:?} is not a valid JSON Schema: {why} (a $ref is followed within the file only)")
        })?;
        Ok(Schema { file: file.to_string(), validator: Arc::new(validator) })
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    /// Every way `value` fails the schema, in the validator's order; empty when it passes.
    pub fn errors(&self, value: &Value) -> Vec<SchemaError> {
        self.validator
            .iter_errors(value)
            .map(|e| SchemaError { at: e.instance_path().to_string(), message: e.to_string() })
            .collect()
    }

    pub fn is_valid(&self, value: &Value) -> bool {
        self.validator.is_valid(value)
    }
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schema({:?})", self.file)
    }
}

/// Two schemas are the same when they come from the same file: a journey is compared by what it
/// says, and it says the file.
impl PartialEq for Schema {
    fn eq(&self, other: &Self) -> bool {
        self.file == other.file
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PRODUCT: &str = r##"{
      "type": "object",
      "required": ["id", "name", "price"],
      "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string", "minLength": 1},
        "price": {"$ref": "#/$defs/money"}
      },
      "$defs": {"money": {"type": "number", "minimum": 0}}
    }"##;

    #[test]
    fn a_schema_lists_every_error_with_where_it_is() {
        let schema = Schema::compile("schemas/product.json", PRODUCT).unwrap();
        assert!(schema.errors(&json!({"id": 1, "name": "Kettle", "price": 25.5})).is_empty());
        let errors = schema.errors(&json!({"id": "1", "price": -2}));
        let at: Vec<&str> = errors.iter().map(|e| e.at.as_str()).collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(at.contains(&"") && at.contains(&"/id") && at.contains(&"/price"), "{errors:?}");
        assert!(errors.iter().any(|e| e.message.contains("\"name\" is a required property")), "{errors:?}");
    }

    #[test]
    fn broken_schemas_and_references_out_of_the_file_are_refused_in_one_sentence() {
        let not_json = Schema::compile("s.json", "{ nope").unwrap_err();
        assert!(not_json.starts_with("schema \"s.json\" is not JSON: "), "{not_json}");
        let invalid = Schema::compile("s.json", r#"{"type": "thing"}"#).unwrap_err();
        assert!(invalid.starts_with("schema \"s.json\" is not a valid JSON Schema: "), "{invalid}");
        let remote = Schema::compile("s.json", r#"{"$ref": "https://example.com/other.json"}"#).unwrap_err();
        assert!(remote.contains("within the file only") && !remote.contains('\n'), "{remote}");
        let file = Schema::compile("s.json", r#"{"$ref": "other.json"}"#).unwrap_err();
        assert!(file.contains("is not a valid JSON Schema"), "{file}");
    }
}
