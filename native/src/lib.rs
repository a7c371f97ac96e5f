//! crossing_monitor_native: the compiled fold of crossing-monitor's metric core.
use pyo3::prelude::*;

#[pymodule]
fn crossing_monitor_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("FOLD_VERSION", 1)?;
    Ok(())
}
