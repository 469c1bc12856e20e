//! Panics turned into errors: shared by the boundary (which contains every panic before it
//! could unwind across `extern "C"`) and the embedded-engine kit (whose blocking threads report
//! a panic as their stream's error instead of ending it early).

/// Text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
