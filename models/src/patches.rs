//! Converter scripts and patches applied to converted models, compiled in so a fetch never
//! depends on files beside the binary. Each is a Python script run in the converter's
//! environment as `script IN OUT`.

/// The script of a named patch.
pub(crate) fn script(name: &str) -> Option<&'static str> {
    match name {
        "dynamic_batch" => Some(include_str!("../patches/dynamic_batch.py")),
        _ => None,
    }
}

/// The script of a named converter.
pub(crate) fn converter(name: &str) -> Option<&'static str> {
    match name {
        "tflite_to_onnx" => Some(include_str!("../converters/tflite_to_onnx.py")),
        _ => None,
    }
}
