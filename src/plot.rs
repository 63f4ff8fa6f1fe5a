//! Charts (placeholder while the core is built).
use std::path::{Path, PathBuf};
/// Draws every chart.
pub fn draw_all(_dir: &Path) -> Result<Vec<PathBuf>, crate::Error> { Ok(vec![]) }
